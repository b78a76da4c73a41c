"""Two processes of every service and of the gateway, on one broker and one database.

The system runs through the launcher with ``PROCESSES=2`` on a database and a RabbitMQ vhost
of its own (next to the run's), so the run's single-process system, when other folders start
it in the same run, never shares a queue or a relay lock with it and every process seen here
is one of ours.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from urllib.parse import quote, urlparse, urlunparse

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from deploy.launcher import LocalSystem, migrate_and_seed
from portal_common.db import Database, drop_database, ensure_database
from tests.conftest import RUN_ID
from tests.support.processes import serve

#: what the timers tick at here (seconds), so a few seconds show many ticks
TICK_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rabbitmqctl(*args: str) -> bool:
    if not shutil.which("rabbitmqctl"):
        return False
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="session")
def scale_database(infrastructure) -> Iterator[str]:
    dsn = f"{infrastructure['pg'].rstrip('/')}/portal_test_{RUN_ID}_scale"
    ensure_database(dsn)
    migrate_and_seed(dsn)
    yield dsn
    drop_database(dsn)


@pytest.fixture(scope="session")
def scale_amqp(infrastructure) -> Iterator[str]:
    base = urlparse(infrastructure["amqp"])
    vhost = f"portal_test_{RUN_ID}_scale"
    if infrastructure["docker"] or base.hostname not in ("127.0.0.1", "localhost"):
        pytest.fail("tests/scale needs a local RabbitMQ where it can add a vhost (rabbitmqctl)")
    if not (_rabbitmqctl("add_vhost", vhost)
            and _rabbitmqctl("set_permissions", "-p", vhost, base.username or "guest", ".*", ".*", ".*")):
        pytest.fail(f"could not create the RabbitMQ vhost {vhost}")
    yield urlunparse(base._replace(path="/" + quote(vhost, safe="")))
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def scaled(scale_database, scale_amqp, tmp_path_factory) -> Iterator[LocalSystem]:
    """Every service and the gateway, two processes each."""
    logs = tmp_path_factory.mktemp("scale-logs")
    sut = LocalSystem(scale_database, scale_amqp, _free_port(), log_dir=logs, extra_env={
        "PROCESSES": "2",
        "LOCAL_ADAPTERS": "yes",
        "RATE_LOOKUP": "100000", "RATE_DEFAULT": "100000", "RATE_SIGNIN": "100000",
        "RATE_REGISTER": "100000", "RATE_OTP": "100000",
        # every timer ticks each second, so a few seconds show whether each tick acted once
        "DOSSIER_OVERDUE_INTERVAL": str(TICK_S), "ROUTER_DELIVERY_TICK": str(TICK_S),
        "IDENTITY_NOTIFY_TICK": str(TICK_S),
        "MAX_WORKERS": "10", "DB_POOL_SIZE": "4",
    })
    assert sut.counts == {name: 2 for name in sut.counts}, sut.counts
    yield from serve(sut, logs, timeout=150)


@pytest.fixture(scope="session")
def cluster(scaled, scale_amqp) -> Iterator[ClusterRpcProxy]:
    with ClusterRpcProxy({"AMQP_URI": scale_amqp}, timeout=20) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def scale_db(scale_database) -> Iterator[Database]:
    db = Database(scale_database, "dossier", size=2, application_name="tests-scale")
    yield db
    db.close()
