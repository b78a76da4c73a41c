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

import time
import uuid

import pytest

from portal_common.db import Database, drop_database, ensure_database
from portal_common.migrations import migrate
from tests.conftest import RUN_ID
from tests.router.conftest import RouterProcess, delivery_statuses, publish, submitted
from tests.router.test_delivery import _drain
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow


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
    wait_for(lambda: delivery_statuses(db, [warm_up]) == {warm_up: ["sent"]}, timeout=30, what="the queue in service")
    assert [d["dossier_code"] for d in _drain(broker.uri, agency, 1).received] == [warm_up]

    publish(broker.uri, [submitted(c, agency) for c in before])
    wait_for(lambda: len(delivery_statuses(db, before)) >= 5, timeout=30, what="routing under way")
    routed_at_stop = len(delivery_statuses(db, before))
    broker.stop(crash=crash)
    assert routed_at_stop < len(before), "the restart came too late to be mid-flow"
    broker.start()
    assert private_router.proc.poll() is None, "the router died with the broker"
    publish(broker.uri, [submitted(c, agency) for c in after])

    wait_for(lambda: (s := delivery_statuses(db, codes)) and len(s) == len(codes)
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


def test_the_reference_back_office_consumes_again_after_a_broker_restart(broker):
    import json
    import threading

    import pika

    from deploy.backoffice.consumer import AgencyConsumer
    from deploy.backoffice.inbox import Inbox

    agency = f"BO{uuid.uuid4().hex[:8].upper()}"

    def deliver(delivery_id: str) -> None:
        """Publish until the broker confirms the message reached the agency's queue: right
        after a restart the queue may not be back yet, and an unroutable message is dropped."""
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pika.BlockingConnection(pika.URLParameters(broker.uri))
                try:
                    channel = conn.channel()
                    channel.confirm_delivery()
                    channel.basic_publish("agency.deliveries", f"agency.{agency}.dossier.submitted",
                                          json.dumps({"delivery_id": delivery_id, "agency_code": agency,
                                                      "dossier_code": delivery_id}).encode(),
                                          pika.BasicProperties(delivery_mode=2), mandatory=True)
                    return
                finally:
                    if conn.is_open:
                        conn.close()
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError, pika.exceptions.AMQPError):
                assert time.monotonic() < deadline, f"{delivery_id} never reached the agency's queue"
                time.sleep(0.2)

    inbox = Inbox()
    consumer = AgencyConsumer(broker.uri, agency, inbox)
    thread = threading.Thread(target=consumer.run_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: consumer.acked == 0 and _queue_exists(broker.uri, f"agency.{agency}"), what="the queue")
        deliver("before")
        wait_for(lambda: "before" in inbox.seen, what="the first delivery")
        broker.stop()
        broker.start()
        deliver("after")
        wait_for(lambda: "after" in inbox.seen, timeout=90, what="a delivery after the restart")
    finally:
        consumer.stopping = True
        thread.join(30)
    assert [d["delivery_id"] for d in inbox.received] == ["before", "after"]
    assert not thread.is_alive()


def _queue_exists(uri: str, queue: str) -> bool:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if conn.is_open:
            conn.close()
