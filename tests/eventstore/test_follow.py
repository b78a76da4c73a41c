"""Following the log by global position never skips an event that commits late.

Appenders in several processes (two threads each) append in transactions they keep open for
a random moment after the append, so that without the store's commit ordering later
positions would regularly commit before earlier ones. One follower polls ``read_all`` with
small batches the whole time; it must see every committed event exactly once, in position
order. See the module docstring of portal_common/eventstore/store.py for the mechanism.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time

import psycopg2
import pytest

from portal_common.db import Database, connect
from portal_common.eventstore import EventStore, NewEvent
from tests.eventstore.conftest import PROBE, probe

pytestmark = pytest.mark.integration

PROCESSES = 3
THREADS = 2
APPENDS = 60  # per thread


def _appender_thread(store: EventStore, worker: str, seed: int, ids: list[str]) -> None:
    rnd = random.Random(seed)
    for i in range(APPENDS):
        stream = f"dossier-{worker}-{rnd.randrange(6)}"
        events = [NewEvent(PROBE, {"note": f"{worker} {i}.{k}", "sequence": i}) for k in range(rnd.randint(1, 3))]
        if rnd.random() < 0.5:
            store.append(stream, None, events)  # stand-alone (autocommit)
        else:
            with store.db.transaction(dict_rows=False) as cur:  # a command's own transaction
                store.append(stream, None, events, cursor=cur)
                time.sleep(rnd.random() / 500)  # the command still works after its append
        ids.extend(str(e.event_id) for e in events)


def appender_process(dsn: str, schema: str, name: str, queue) -> None:
    """One appender process (spawned): THREADS threads appending; sends back the event ids."""
    db = Database(dsn, schema, size=THREADS)
    store = EventStore(db, schema)
    ids: list[str] = []
    errors: list[str] = []

    def guarded(worker: str, seed: int) -> None:
        try:
            _appender_thread(store, worker, seed, ids)
        except Exception as exc:  # reported to the test, which fails on it
            errors.append(f"{worker}: {exc!r}")

    threads = [threading.Thread(target=guarded, args=(f"{name}t{t}", hash((name, t)))) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.close()
    queue.put((name, ids, errors))


def test_follower_sees_every_event_exactly_once_in_order_under_concurrent_appenders(log):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=appender_process, args=(log.db.dsn, log.schema, f"p{i}", results))
             for i in range(PROCESSES)]
    for p in procs:
        p.start()

    seen_positions: list[int] = []
    seen_ids: list[str] = []
    last = 0
    appended: dict[str, list[str]] = {}
    failures: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        batch = log.read_all(last, limit=7)
        for event in batch:
            seen_positions.append(event.position)
            seen_ids.append(str(event.event_id))
        if batch:
            last = batch[-1].position
            continue
        while not results.empty():
            name, ids, errors = results.get()
            appended[name] = ids
            failures.extend(errors)
        finished = len(appended) == PROCESSES and all(not p.is_alive() for p in procs)
        if finished and not log.read_all(last, limit=1):
            break
        time.sleep(0.001)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0, "an appender process failed"

    assert failures == [], "appender threads failed"
    expected = {i for ids in appended.values() for i in ids}
    assert len(appended) == PROCESSES and len(expected) >= PROCESSES * THREADS * APPENDS
    assert len(seen_ids) == len(set(seen_ids)), "the follower saw an event twice"
    assert set(seen_ids) == expected, f"the follower missed {len(expected - set(seen_ids))} events"
    assert seen_positions == sorted(seen_positions)
    assert [e.position for e in log.iter_all(0, batch_size=50)] == seen_positions


def _wait_until_waiting_on_advisory_lock(watch, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with watch.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,))
            row = cur.fetchone()
            if row == ("Lock", "advisory"):
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on the log's lock")


def test_a_later_append_waits_for_the_open_one_so_positions_commit_in_order(log):
    """The mechanism itself: while one append's transaction is open, a second append cannot
    draw a position, so the follower cannot see a later position before the earlier one."""
    log.append("dossier-0", 0, [probe(0)])
    head = log.head_position()
    holder = connect(log.db.dsn, log.schema)
    second = connect(log.db.dsn, log.schema)
    watch = connect(log.db.dsn, log.schema)
    watch.autocommit = True
    try:
        with holder.cursor() as cur:
            first = log.append("dossier-1", 0, [probe(1)], cursor=cur)  # open, not committed
        with second.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            second_pid = cur.fetchone()[0]
        second.commit()
        outcome: dict = {}

        def append_second():
            try:
                with second.cursor() as cur:
                    outcome["result"] = log.append("dossier-2", 0, [probe(2)], cursor=cur)
                second.commit()
            except psycopg2.Error as exc:  # pragma: no cover - reported below
                outcome["error"] = exc

        t = threading.Thread(target=append_second)
        t.start()
        _wait_until_waiting_on_advisory_lock(watch, second_pid)
        assert log.read_all(head) == []  # nothing committed past the head yet
        holder.commit()
        t.join(30)
        assert "error" not in outcome
        assert outcome["result"].first_position > first.last_position
        assert [e.stream_id for e in log.read_all(head)] == ["dossier-1", "dossier-2"]
    finally:
        for conn in (holder, second, watch):
            conn.close()


def test_rolled_back_append_leaves_a_gap_the_follower_passes_safely(log):
    log.append("dossier-0", 0, [probe(0)])
    with pytest.raises(RuntimeError), log.db.transaction(dict_rows=False) as cur:
        log.append("dossier-1", 0, [probe(1)], cursor=cur)
        raise RuntimeError("command failed")
    log.append("dossier-2", 0, [probe(2)])
    positions = [e.position for e in log.read_all(0)]
    assert len(positions) == 2 and positions[1] > positions[0] + 1  # a gap nobody will ever fill
    assert [e.stream_id for e in log.read_all(positions[0])] == ["dossier-2"]


def test_docstring_explains_the_ordering_guarantee():
    from portal_common.eventstore import store

    doc = store.__doc__ or ""
    for phrase in ("advisory lock", "commit", "position", "last_seen"):
        assert phrase in doc, phrase

