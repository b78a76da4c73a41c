"""RabbitMQ restarted mid-flow: every dossier still reaches its agency exactly once in effect.

Runs on a private broker node (``broker.py``): the shared broker is never stopped. The router
runs as a real ``nameko run`` process on a database of its own; dossier events are published
as the outbox relay does; the broker goes down while deliveries are being routed and
published (a clean shutdown, or a SIGKILL of the Erlang VM: confirmed messages are on disk
either way) and is started again on the same data. Events published before and after the
restart all arrive; a copy sent twice across the restart carries the same delivery id and
is dropped by the agency's inbox.
"""

from __future__ import annotations

import uuid

import pytest

from portal_common.db import Database, drop_database, ensure_database
from portal_common.migrations import migrate
from tests.conftest import RUN_ID
from tests.router.broker import PrivateBroker, server_binary
from tests.router.conftest import RouterProcess, publish, submitted, wait_for
from tests.router.test_delivery import _drain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if server_binary() is None:
        pytest.skip("rabbitmq-server is not installed: no private broker node to restart")
    node = PrivateBroker(tmp_path_factory.mktemp("rabbitmq-node")).start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def restart_db(infrastructure):
    dsn = f"{infrastructure['pg'].rstrip('/')}/portal_test_{RUN_ID}_router_mq"
    ensure_database(dsn)
    migrate(dsn, "router", "services.router", create_database=False)
    db = Database(dsn, "router", size=2)
    yield dsn, db
    db.close()
    drop_database(dsn)


@pytest.fixture
def private_router(broker, restart_db, tmp_path):
    proc = RouterProcess(restart_db[0], broker.uri, tmp_path / "router-logs")
    # production-like patience: an outage of a few seconds must not dead-letter anything
    proc.system.extra_env.update({"DELIVERY_MAX_ATTEMPTS": "60", "DELIVERY_BACKOFF_CAP": "1.0"})
    proc.start()
    yield proc
    proc.stop()


def _statuses(db: Database, codes: list[str]) -> dict[str, list[str]]:
    with db.transaction() as cur:
        cur.execute("SELECT dossier_code, status FROM deliveries WHERE dossier_code = ANY(%s)", (codes,))
        result: dict[str, list[str]] = {}
        for row in cur.fetchall():
            result.setdefault(row["dossier_code"], []).append(row["status"])
        return result


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_broker_restart_mid_flow_loses_and_doubles_nothing(broker, restart_db, private_router, crash):
    db = restart_db[1]
    agency = f"MQ{uuid.uuid4().hex[:8].upper()}"
    before = [f"B{uuid.uuid4().hex[:12].upper()}" for _ in range(400)]
    after = [f"A{uuid.uuid4().hex[:12].upper()}" for _ in range(20)]
    codes = before + after

    # the agency's queue has been in service before the outage, as in real life: a quorum
    # queue created in the very second of a SIGKILL may never elect its leader again
    # (RabbitMQ 3.10 had not persisted its membership), and no client can change that
    warm_up = f"W{uuid.uuid4().hex[:12].upper()}"
    publish(broker.uri, [submitted(warm_up, agency)])
    wait_for(lambda: _statuses(db, [warm_up]) == {warm_up: ["sent"]}, timeout=30, what="the queue in service")
    assert [d["dossier_code"] for d in _drain(broker.uri, agency, 1).received] == [warm_up]

    publish(broker.uri, [submitted(c, agency) for c in before])
    wait_for(lambda: len(_statuses(db, before)) >= 5, timeout=30, what="routing under way")
    routed_at_stop = len(_statuses(db, before))
    broker.stop(crash=crash)
    assert routed_at_stop < len(before), "the restart came too late to be mid-flow"
    broker.start()
    assert private_router.proc.poll() is None, "the router died with the broker"
    publish(broker.uri, [submitted(c, agency) for c in after])

    wait_for(lambda: (s := _statuses(db, codes)) and len(s) == len(codes)
             and all(v == ["sent"] for v in s.values()), timeout=120, interval=0.5,
             what="every delivery sent after the restart")
    inbox = _drain(broker.uri, agency, len(codes), timeout=60)
    assert sorted(d["dossier_code"] for d in inbox.received) == sorted(codes)  # nothing lost
    assert len(inbox.seen) == len(codes)  # one delivery id per dossier: doubles are dropped
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n, count(DISTINCT dossier_code) AS d FROM deliveries "
                    "WHERE dossier_code = ANY(%s)", (codes,))
        row = cur.fetchone()
        assert (row["n"], row["d"]) == (len(codes), len(codes))
        cur.execute("SELECT count(*) AS n FROM deliveries WHERE status = 'dead'")
        assert cur.fetchone()["n"] == 0
