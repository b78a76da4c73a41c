"""Exactly-once effect on top of at-least-once delivery: ``handle_once`` records the event id
in the consumer's own transaction, so a copy delivered again changes nothing."""

from __future__ import annotations

import contextlib

import pytest
from kombu import Connection

from portal_common.consumer import claim, handle_once
from portal_common.outbox import OutboxRelay
from tests.eventstore.amqp_helpers import bound_queue, publish_all, take
from tests.eventstore.conftest import probes
from tests.support.threads import all_at_once

pytestmark = pytest.mark.integration

CONSUMER = "test-tally"


@pytest.fixture
def consumer_db(fresh_schema):
    """The consumer's own schema (its processed_events table) with an effect table."""
    db = fresh_schema("c")
    with db.transaction() as cur:
        cur.execute("CREATE TABLE tally (stream_id text PRIMARY KEY, events integer NOT NULL)")
    return db


def _apply(cur, envelope: dict) -> int:
    cur.execute("INSERT INTO tally VALUES (%s, 1) ON CONFLICT (stream_id) DO UPDATE "
                "SET events = tally.events + 1 RETURNING events", (envelope["stream_id"],))
    return cur.fetchone()["events"]


def _tally(db) -> dict[str, int]:
    with db.transaction() as cur:
        cur.execute("SELECT stream_id, events FROM tally")
        return {r["stream_id"]: r["events"] for r in cur.fetchall()}


@contextlib.contextmanager
def _reopen(amqp_uri: str, queue):
    """The same queue over a new connection (a restarted consumer); deleted afterwards."""
    conn = Connection(amqp_uri, connect_timeout=10)
    again = queue(conn.channel())
    try:
        yield again
    finally:
        with contextlib.suppress(Exception):
            again.delete()
        conn.release()


def test_duplicates_from_a_relay_crash_have_one_effect(log, consumer_db, amqp_uri):
    log.append("dossier-A", 0, probes(1, 4))
    log.append("dossier-B", 0, probes(10, 3))
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        crashing = OutboxRelay(log.db.dsn, log.schema, amqp_uri, batch_size=5)
        crashing.after_publish = lambda _b: (_ for _ in ()).throw(ConnectionError("crash"))
        crashing.acquire_leadership()
        with pytest.raises(ConnectionError):
            crashing.drain()
        crashing.close()
        publish_all(log, amqp_uri, batch_size=5)
        messages = take(queue, 12)
    assert len(messages) == 12  # 7 events, the first batch of 5 twice
    applied = [handle_once(consumer_db, CONSUMER, m.payload, _apply)[0] for m in messages]
    assert applied.count(True) == 7 and applied.count(False) == 5
    assert _tally(consumer_db) == {"dossier-A": 4, "dossier-B": 3}


def test_broker_redelivery_after_consumer_crash_before_ack_has_one_effect(log, consumer_db, amqp_uri):
    """The handler commits its effect, then the consumer dies before acking: RabbitMQ delivers
    the message again (redelivered flag set) and the second run is a no-op."""
    log.append("dossier-A", 0, probes(1, 2))
    with bound_queue(amqp_uri, log.schema) as (conn, queue):
        publish_all(log, amqp_uri)
        first = take(queue, 2, ack=False)
        assert [handle_once(consumer_db, CONSUMER, m.payload, _apply) for m in first] == [(True, 1), (True, 2)]
        conn.release()  # dies before acking: the broker requeues both
        with _reopen(amqp_uri, queue) as again:
            second = take(again, 2)
    assert all(m.delivery_info["redelivered"] for m in second)
    assert [m.properties["message_id"] for m in second] == [m.properties["message_id"] for m in first]
    assert [handle_once(consumer_db, CONSUMER, m.payload, _apply) for m in second] == [(False, None)] * 2
    assert _tally(consumer_db) == {"dossier-A": 2}


def test_handler_that_fails_records_nothing_so_the_redelivery_applies_once(consumer_db):
    envelope = {"event_id": "6f1c3c52-8a0e-4c1b-9d57-0f3e2b1a9c11", "stream_id": "dossier-X"}

    def fail_after_effect(cur, env):
        _apply(cur, env)
        raise RuntimeError("crash inside the handler")

    with pytest.raises(RuntimeError):
        handle_once(consumer_db, CONSUMER, envelope, fail_after_effect)
    assert _tally(consumer_db) == {}
    assert handle_once(consumer_db, CONSUMER, envelope, _apply) == (True, 1)
    assert handle_once(consumer_db, CONSUMER, envelope, _apply) == (False, None)
    assert _tally(consumer_db) == {"dossier-X": 1}


def test_two_copies_handled_at_the_same_time_apply_once(consumer_db):
    """Two workers get copies of one event at once: the second waits on the first's claim and
    then finds it taken."""
    envelope = {"event_id": "0b6a3f0e-1f7c-4d7e-8c1e-5a9d2f4b7e21", "stream_id": "dossier-Y"}
    results, errors = all_at_once(lambda _: handle_once(consumer_db, CONSUMER, envelope, _apply)[0], 3)
    assert sorted(results) == [False] * 2 + [True] and errors == []
    assert _tally(consumer_db) == {"dossier-Y": 1}


def test_each_consumer_has_its_own_record(consumer_db):
    envelope = {"event_id": "3d1f5c9e-2b4a-4f6d-8e0c-7a9b1c3d5e7f", "stream_id": "dossier-Z"}
    assert handle_once(consumer_db, "projection-a", envelope, _apply)[0]
    assert handle_once(consumer_db, "projection-b", envelope, _apply)[0]
    with consumer_db.transaction() as cur:
        assert not claim(cur, "projection-a", envelope["event_id"])
    assert _tally(consumer_db) == {"dossier-Z": 2}


@pytest.mark.parametrize("bad_id", ["", "not-a-uuid", "1; DROP TABLE tally", None])
def test_malformed_event_id_is_refused_without_effect(consumer_db, bad_id):
    with pytest.raises((ValueError, KeyError, TypeError)):
        handle_once(consumer_db, CONSUMER, {"event_id": bad_id, "stream_id": "dossier-Q"}, _apply)
    assert _tally(consumer_db) == {}
