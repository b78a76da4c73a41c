"""The outbox relay: every committed event reaches RabbitMQ at least once, whatever crashes.

Each test has its own log (schema) and so its own exchange ``<schema>.events`` on the run's
own vhost; a queue bound to it with ``#`` stands in for the consumers.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from portal_common.outbox import OutboxRelay
from tests.eventstore.amqp_helpers import bound_queue, publish_all, take
from tests.eventstore.conftest import probes

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _relay(log, amqp_uri, **kw) -> OutboxRelay:
    return OutboxRelay(log.db.dsn, log.schema, amqp_uri, **kw)


def _ids(messages) -> list[str]:
    return [m.properties["message_id"] for m in messages]


def _all_ids(log) -> list[str]:
    return [str(e.event_id) for e in log.iter_all()]


def test_committed_events_are_published_persistent_with_their_event_id(log, amqp_uri):
    log.append("dossier-A", 0, probes(1, 3))
    log.append("dossier-B", 0, probes(10, 2))
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        relay = _relay(log, amqp_uri)
        try:
            assert relay.acquire_leadership()
            assert relay.state().backlog == 5
            assert relay.drain() == 5
            messages = take(queue, 5)
            state = relay.state()
        finally:
            relay.close()
    assert _ids(messages) == _all_ids(log)  # in log order, each once
    first = messages[0]
    assert first.delivery_info["routing_key"] == "ServiceProbeRecorded"
    assert first.delivery_info["exchange"] == f"{log.schema}.events"
    assert first.properties["delivery_mode"] == 2
    assert first.headers["stream_id"] == "dossier-A"
    assert first.payload["event_id"] == first.properties["message_id"]
    assert first.payload["data"] == {"note": "probe 1", "sequence": 1}
    assert (state.backlog, state.checkpoint, state.oldest_unpublished_age_s) == (0, log.head_position(), None)


def test_uncommitted_event_is_never_published(log, amqp_uri):
    with pytest.raises(RuntimeError), log.db.transaction(dict_rows=False) as cur:
        log.append("dossier-A", 0, probes(1, 2), cursor=cur)
        raise RuntimeError("rolled back")
    log.append("dossier-B", 0, probes(5, 1))
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        publish_all(log, amqp_uri)
        messages = take(queue, 1)
    assert [m.headers["stream_id"] for m in messages] == ["dossier-B"]


RELAY_THAT_DIES = textwrap.dedent("""
    import os, sys
    from portal_common.outbox import OutboxRelay
    dsn, schema, amqp, die_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    relay = OutboxRelay(dsn, schema, amqp, batch_size=10, idle_wait=0.05)
    published = 0
    real_publish = relay._publish
    def publish_then_maybe_die(event):
        global published
        real_publish(event)              # confirmed by the broker ...
        published += 1
        if published == die_after:       # ... and the process dies before its checkpoint moves
            os._exit(17)
    relay._publish = publish_then_maybe_die
    relay.run(lambda: False)
""")


def test_relay_killed_mid_batch_then_events_committed_while_it_is_down_nothing_lost(log, amqp_uri, tmp_path):
    """The relay process dies (os._exit: no clean-up) after publishing 15 events, half-way into
    its second batch; more events commit while no relay runs; a new relay publishes the rest.
    Every committed event arrives, the only copies are the unconfirmed batch's."""
    log.append("dossier-A", 0, probes(1, 20))
    log.append("dossier-B", 0, probes(100, 20))
    script = tmp_path / "relay_that_dies.py"
    script.write_text(RELAY_THAT_DIES)
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        proc = subprocess.run([sys.executable, str(script), log.db.dsn, log.schema, amqp_uri, "15"],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, timeout=120)
        assert proc.returncode == 17, proc.stderr.decode()[-2000:]
        log.append("dossier-C", 0, probes(200, 10))  # committed while no relay runs

        relay = _relay(log, amqp_uri, batch_size=10)
        try:
            assert relay.acquire_leadership()  # the dead relay's session lock went with it
            assert relay.checkpoint() == log.read_all(0, 10)[-1].position  # first batch was recorded
            relay.drain()
        finally:
            relay.close()
        messages = take(queue, 55)
    committed = _all_ids(log)
    received = Counter(_ids(messages))
    assert set(received) == set(committed)
    duplicates = sorted(i for i, n in received.items() if n > 1)
    assert duplicates == sorted(committed[10:15])
    assert all(n <= 2 for n in received.values())


def test_crash_between_confirm_and_checkpoint_republishes_from_the_checkpoint(log, amqp_uri):
    log.append("dossier-A", 0, probes(1, 6))
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        crashing = _relay(log, amqp_uri, batch_size=4)

        def crash(_batch):
            raise ConnectionError("relay crashed before moving its checkpoint")

        crashing.after_publish = crash
        crashing.acquire_leadership()
        with pytest.raises(ConnectionError):
            crashing.drain()
        assert crashing.checkpoint() == 0
        crashing.close()

        assert publish_all(log, amqp_uri, batch_size=4) == 6
        messages = take(queue, 10)
    ids = _ids(messages)
    committed = _all_ids(log)
    assert ids == committed[:4] + committed  # the unconfirmed batch again, then everything in order


def test_broker_unreachable_nothing_is_marked_published(log, amqp_uri):
    log.append("dossier-A", 0, probes(1, 3))
    down = _relay(log, "amqp://guest:guest@127.0.0.1:1/")
    down.acquire_leadership()
    with pytest.raises(Exception):  # whatever the transport raises
        down.publish_batch()
    assert down.checkpoint() == 0
    down.close()
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        publish_all(log, amqp_uri)
        assert _ids(take(queue, 3)) == _all_ids(log)


class _CountingConnection:
    """The relay's connection, counting the round trips its cursors make."""

    def __init__(self, conn):
        self._conn = conn
        self.round_trips: list[str] = []

    def cursor(self, *args, **kwargs):
        cur, trips = self._conn.cursor(*args, **kwargs), self.round_trips

        class Counting:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                cur.close()

            def execute(self, query, params=None):
                trips.append(query if isinstance(query, str) else query.decode())
                return cur.execute(query, params)

            def __getattr__(self, name):
                return getattr(cur, name)

        return Counting()

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_leader_moves_its_checkpoint_in_the_round_trip_of_the_next_read(log, amqp_uri):
    """15 events in batches of 5: the checkpoint read once, the first batch read, then each
    checkpoint move with the next read (the last finds nothing), and a drain's own last read;
    nothing published twice or skipped, and events appended after a drain are published by
    the next one."""
    log.append("dossier-A", 0, probes(1, 15))
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        relay = _relay(log, amqp_uri, batch_size=5)
        try:
            assert relay.acquire_leadership()
            counting = relay._db = _CountingConnection(relay._db)
            assert relay.drain() == 15
            trips = counting.round_trips
            assert len(trips) == 6, trips  # before: checkpoint, then a read and a move per batch, a last read
            assert [";" in t for t in trips] == [False, False, True, True, True, False]  # a move and a read
            # the read and the move run as prepared statements, each prepared once (its first use)
            assert len(counting.prepared) == 2 and all(t.startswith("EXECUTE portal_") for t in trips[1:])
            assert relay.checkpoint() == log.head_position()
            log.append("dossier-B", 0, probes(100, 2))
            assert relay.drain() == 2
            messages = take(queue, 17)
        finally:
            relay.close()
    assert _ids(messages) == _all_ids(log)


def test_one_relay_publishes_at_a_time_and_a_standby_takes_over(log, amqp_uri):
    first, second = _relay(log, amqp_uri), _relay(log, amqp_uri)
    try:
        assert first.acquire_leadership()
        assert not second.acquire_leadership()
        first.close()  # or dies: the lock is the session's
        # The server frees a closed session's locks as its backend exits: a moment later.
        deadline = time.monotonic() + 10
        while not second.acquire_leadership():
            assert time.monotonic() < deadline, "the standby never took over"
            time.sleep(0.05)
    finally:
        first.close()
        second.close()


def test_running_relay_follows_new_appends_until_stopped(log, amqp_uri):
    """run() in a thread: appends made while it runs are published (LISTEN/NOTIFY wakes it)."""
    import threading

    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        relay = _relay(log, amqp_uri, idle_wait=0.2)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop.is_set,))
        thread.start()
        try:
            for i in range(5):
                log.append(f"dossier-{i}", 0, probes(i, 2))
            messages = take(queue, 10)
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert _ids(messages) == _all_ids(log)


def test_relay_process_killed_while_running_next_one_resumes_from_checkpoint(log, amqp_uri, tmp_path):
    """A relay process killed with SIGKILL (a service crash): the next relay resumes from the
    checkpoint, so events committed meanwhile are published and none twice once confirmed."""
    log.append("dossier-A", 0, probes(1, 5))
    script = tmp_path / "relay_forever.py"
    script.write_text(RELAY_THAT_DIES)
    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        proc = subprocess.Popen([sys.executable, str(script), log.db.dsn, log.schema, amqp_uri, "0"],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            first = take(queue, 5)
            log.append("dossier-B", 0, probes(10, 3))
            first += take(queue, 3)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        log.append("dossier-C", 0, probes(20, 2))
        assert publish_all(log, amqp_uri) == 2
        rest = take(queue, 2)
    assert _ids(first + rest) == _all_ids(log)


def test_state_can_be_read_from_another_thread_while_the_relay_runs(log, amqp_uri):
    """Metrics, ops and tests read state() while run() uses the same connection: no mix-up."""
    import threading

    with bound_queue(amqp_uri, log.schema) as (_conn, queue):
        relay = _relay(log, amqp_uri, idle_wait=0.05, batch_size=3)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop.is_set,), daemon=True)
        thread.start()
        try:
            states = []
            for i in range(20):
                log.append(f"dossier-{i}", 0, probes(i, 1))
                states.append(relay.state())
            messages = take(queue, 20)
            final = relay.state()
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert all(0 <= s.checkpoint <= s.head and s.backlog == s.head - s.checkpoint for s in states)
    assert [s.head for s in states] == sorted(s.head for s in states)
    assert (final.backlog, final.checkpoint) == (0, log.head_position())
    assert _ids(messages) == _all_ids(log)


def test_an_append_notified_during_another_query_wakes_the_relay_at_once(log, amqp_uri):
    """psycopg2 reads a notification that arrives with a query's answer off the socket (into
    ``notifies``). Any query of the relay's connection can take it so: the read that found the
    log's end, or a metrics thread's ``state()``. A relay that then waited for the socket slept
    its whole ``idle_wait`` with that append unpublished."""
    import psycopg2

    relay = _relay(log, amqp_uri, idle_wait=5.0)
    try:
        assert relay.acquire_leadership()  # and LISTENs
        log.append("dossier-n", 0, probes(0, 1))  # notifies as it commits
        assert select.select([relay._database()], [], [], 10)[0]  # the notification waits on its socket
        relay.state()  # a query on that connection reads it with its answer
        assert relay._database().notifies  # off the socket: a select() would not see it
        started = time.monotonic()
        relay._wait_for_appends(5.0)
        assert time.monotonic() - started < 1.0
        assert not relay._database().notifies
        started = time.monotonic()
        relay._wait_for_appends(0.3)  # nothing new: the wait is the timeout
        assert time.monotonic() - started >= 0.3
        with psycopg2.connect(log.db.dsn) as other, other.cursor() as cur:
            cur.execute(f"NOTIFY {log.schema}_events")
        other.close()
        started = time.monotonic()
        relay._wait_for_appends(5.0)  # one still on the socket wakes it as before
        assert time.monotonic() - started < 1.0
    finally:
        relay.close()
