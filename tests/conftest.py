"""Test infrastructure: a fresh database and RabbitMQ vhost per test run, and (for tests
that need it) the whole system running against them.

With a Docker engine present, pytest-docker brings up docker-compose.yml's ``postgres`` and
``rabbitmq`` services; otherwise the services named by ``TEST_DATABASE_URL`` (a server-level
DSN) and ``TEST_AMQP_URI`` are used, defaulting to 127.0.0.1, and started (or installed) by
``deploy.infrastructure`` when local and not answering, as ``make up`` does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

import pytest

from deploy.infrastructure import ensure_infrastructure
from deploy.launcher import LocalSystem, migrate_and_seed
from portal_common.db import Database, drop_database, ensure_database
from portal_common.migrations import migrate
from services.router.delivery_keys import generate_pem
from tests.support.processes import serve

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]
DELIVERY_KEY = generate_pem()  # the Ed25519 key the running system signs deliveries with
# Every service this run starts (in process or as children) serves its metrics on a free port
# (reported by its health RPC), never on the fixed defaults another run may hold.
os.environ.setdefault("METRICS_PORT", "0")
# Several suites share one PostgreSQL and its connection slots: pools give idle ones back fast.
os.environ.setdefault("DB_POOL_IDLE_TIMEOUT", "5")
os.environ.setdefault("DB_POOL_MIN_IDLE", "1")
# A failed event message is tried again soon in tests (production backs off 1 s ... 5 min).
os.environ.setdefault("CONSUMER_RETRY_DELAYS", "0.5,1,2,4")


def _docker_available() -> bool:
    if os.environ.get("TEST_USE_DOCKER", "auto") == "no" or not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session", autouse=True)
def marked_statements_prepare():
    """Every statement marked ``Prepared`` that the run's in-process code sent was prepared:
    one the server refuses still runs (as text), so only this says it was marked by mistake."""
    yield
    from portal_common import prepared
    assert not prepared._REFUSED, f"marked statements the server would not prepare: {prepared._REFUSED}"


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up --build -d postgres rabbitmq"]


@pytest.fixture(scope="session")
def infrastructure(request) -> dict[str, str]:
    """Server-level PostgreSQL DSN and AMQP URI of the broker and database under test."""
    if _docker_available():
        services = request.getfixturevalue("docker_services")
        ip = request.getfixturevalue("docker_ip")
        pg_port = services.port_for("postgres", 5432)
        mq_port = services.port_for("rabbitmq", 5672)
        services.wait_until_responsive(lambda: _port_open(ip, pg_port) and _port_open(ip, mq_port),
                                       timeout=90, pause=1)
        return {"pg": f"postgresql://postgres:postgres@{ip}:{pg_port}",
                "amqp": f"amqp://guest:guest@{ip}:{mq_port}/", "docker": "yes"}
    pg = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    amqp = os.environ.get("TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    try:  # as `make up` does: start (or on Debian/Ubuntu install) local servers that do not answer
        ensure_infrastructure(pg, amqp)
    except SystemExit as exc:
        pytest.exit(str(exc), returncode=3)
    return {"pg": pg, "amqp": amqp, "docker": ""}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def database_url(infrastructure):
    """A database of this run's own, dropped at the end."""
    dsn = f"{infrastructure['pg'].rstrip('/')}/portal_test_{RUN_ID}"
    ensure_database(dsn)
    yield dsn
    drop_database(dsn)


def _rabbitmqctl(*args: str) -> bool:
    if not shutil.which("rabbitmqctl"):
        return False
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60).returncode == 0


def private_vhost(base_uri: str, vhost: str, who: str):
    """A RabbitMQ vhost of the caller's own on the local broker (a generator for a fixture:
    yields its URI, deletes it after); skips when it cannot be made (no rabbitmqctl)."""
    base = urlparse(base_uri)
    created = base.hostname in ("127.0.0.1", "localhost") and _rabbitmqctl("add_vhost", vhost) and \
        _rabbitmqctl("set_permissions", "-p", vhost, base.username or "guest", ".*", ".*", ".*")
    if not created:
        pytest.skip(f"{who} need a RabbitMQ vhost of their own (rabbitmqctl)")
    yield urlunparse(base._replace(path="/" + quote(vhost, safe="")))
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_uri(infrastructure):
    """An AMQP URI on a vhost of this run's own (deleted at the end when we made it)."""
    vhost = f"portal_test_{RUN_ID}"
    base = urlparse(infrastructure["amqp"])
    created = False
    if infrastructure["docker"]:
        cmd = ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "exec", "-T", "rabbitmq"]
        created = subprocess.run([*cmd, "rabbitmqctl", "add_vhost", vhost], capture_output=True).returncode == 0
        created = created and subprocess.run(
            [*cmd, "rabbitmqctl", "set_permissions", "-p", vhost, base.username or "guest", ".*", ".*", ".*"],
            capture_output=True).returncode == 0
    elif base.hostname in ("127.0.0.1", "localhost"):
        created = _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl(
            "set_permissions", "-p", vhost, base.username or "guest", ".*", ".*", ".*")
    uri = urlunparse(base._replace(path="/" + quote(vhost, safe=""))) if created else infrastructure["amqp"]
    yield uri
    if created and not infrastructure["docker"]:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def migrated_database(database_url):
    """The run's database with every service schema migrated and seed data loaded."""
    migrate_and_seed(database_url)
    return database_url


@pytest.fixture
def fresh_schema(database_url):
    """A new, migrated event-store schema for one test: an isolated log."""
    created = []

    def make(prefix: str = "t") -> Database:
        schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
        migrate(database_url, schema, create_database=False)
        db = Database(database_url, schema, size=8)
        created.append(db)
        return db

    yield make
    for db in created:
        db.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def system(migrated_database, amqp_uri, tmp_path_factory):
    """The whole system (four services and the gateway) on this run's database and vhost."""
    logs = tmp_path_factory.mktemp("logs")
    payment_secrets = tmp_path_factory.mktemp("payment-secrets")  # empty: the local secret signs
    sut = LocalSystem(migrated_database, amqp_uri, _free_port(), log_dir=logs,
                      extra_env={"LOCAL_ADAPTERS": "yes", "RATE_LOOKUP": "100000",
                                 "RATE_DEFAULT": "100000", "RATE_SIGNIN": "100000",
                                 "RATE_REGISTER": "100000", "RATE_OTP": "100000",
                                 # tests that pound sign-in (schemathesis) say X-Forwarded-For, so
                                 # identity's per-address lockout hits their address, not 127.0.0.1
                                 "TRUSTED_PROXIES": "127.0.0.1",
                                 # the HMAC secret of the e2e agency's signed callbacks (tests/e2e)
                                 "AGENCY_SECRET_E2E": f"e2e-callback-{RUN_ID}",
                                 # the local VNeID stand-in (deploy/vneid) on a port of this run's own
                                 "VNEID_STANDIN_PORT": str(_free_port()),
                                 # subscriptions: the key that signs deliveries, callbacks on 127.0.0.1
                                 "AGENCY_SECRET_DELIVERY_KEY": DELIVERY_KEY,
                                 "CALLBACK_ALLOW_LOOPBACK": "yes",
                                 # the merchant secret's folder (tests/payment rotate it there)
                                 "PAYMENT_SECRETS_DIR": str(payment_secrets),
                                 # the portal's port (tests/portal), so identity registers its VNeID return
                                 "PORTAL_PORT": str(_free_port()),
                                 # the router reads the catalog's agencies again every few seconds
                                 # (tests/router/test_agency_sync.py), not every ten minutes
                                 "AGENCY_SYNC_INTERVAL": "5", "AGENCY_SYNC_TICK": "2"})
    yield from serve(sut, logs, timeout=120)


@pytest.fixture(scope="session")
def gateway_url(system) -> str:
    return system.gateway_url
