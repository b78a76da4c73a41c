"""``python -m bench store [--quick]``: event-store append and replay rates beside raw psycopg2.

Works on a throw-away database (``portal_bench_store_<run>``, dropped at the end) holding one
event log (schema ``bench``, created by the real migration) and a bare table of the same shape
(``bench.raw_events``: same columns, primary key, unique constraints; no trigger, no function).
In the same run it times:

- ``append_1``: ``EventStore.append`` of one event per transaction (schema validation, hash
  chain, advisory lock, optimistic version check, commit) against one raw ``INSERT`` and
  ``commit()``, psycopg2's usual transactional form;
- ``append_10``: ten events of one stream per transaction against one multi-row raw
  ``INSERT`` of ten rows (``execute_values``) and ``commit()``;
- ``raw_auto_1`` (for information): the raw single ``INSERT`` in autocommit, which saves the
  BEGIN and COMMIT round trips as the store's stand-alone append does;
- ``append_1x4`` (for information): four writers at once, one event per transaction each,
  against four raw connections: every append of one log takes the log's lock until it
  commits, so unlike raw INSERTs the store's appends to one log do not share a commit flush;
- ``replay``: ``EventStore.iter_all`` over the whole log (``RecordedEvent`` objects, batches of
  5,000) against a raw keyset-paginated ``SELECT`` of the same rows through psycopg2, its
  jsonb decoded by orjson (the fastest decoder at hand), the two passes advancing batch by
  batch in alternation.

Both sides of a figure run in alternating rounds (the order swapped every round) and each
rate is events over seconds summed across the rounds, so load from other work on the machine
falls on both alike. Last line:
``RESULT store append_1_per_s=... raw_insert_1_per_s=... append_1_ratio=... append_10_per_s=...
raw_insert_10_per_s=... append_10_ratio=... append_ratio=... replay_per_s=... raw_select_per_s=...
replay_ratio=... errors=0`` with ``append_ratio`` the worse of the two append ratios. A failed
append (raised in a writer thread) or a replay pass that did not read the whole log makes it
``FAILED store errors=N`` instead; an error in the main thread ends the run with its traceback.
Targets: ``append_ratio >= 0.8``, ``replay_ratio >= 0.5``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import psycopg2
import psycopg2.extras

from bench.support import Failures, finish, throwaway_database
from portal_common.db import Database, connect
from portal_common.eventstore import EventContext, EventStore, NewEvent
from portal_common.eventstore.events import Actor
from portal_common.migrations import migrate

SCHEMA = "bench"
EVENT_TYPE = "ServiceProbeRecorded"
NOTE = "Hồ sơ đăng ký khai sinh đã được tiếp nhận tại UBND phường Bến Thành, hẹn trả kết quả ngày 28/11"
CONTEXT = EventContext(actor=Actor("citizen", "079203001234"), correlation_id="bench-correlation")

# The raw baseline writes to a copy of the log's own table (columns, checks, keys), not
# through its append function, trigger or position lock; positions come from a plain serial.
RAW_TABLE = f"""
CREATE TABLE {SCHEMA}.raw_events (LIKE {SCHEMA}.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE SEQUENCE {SCHEMA}.raw_events_position_seq OWNED BY {SCHEMA}.raw_events.position;
ALTER TABLE {SCHEMA}.raw_events ALTER position SET DEFAULT nextval('{SCHEMA}.raw_events_position_seq');
"""
RAW_INSERT = (
    f"INSERT INTO {SCHEMA}.raw_events (stream_id, stream_type, version, event_id, event_type, "
    "schema_version, payload, metadata, occurred_at, prev_hash, hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
RAW_INSERT_MANY = RAW_INSERT.split(" VALUES ")[0] + " VALUES %s"
RAW_SELECT = (
    f"SELECT position, stream_id, stream_type, version, event_id, event_type, schema_version, "
    f"payload, metadata, occurred_at, recorded_at FROM {SCHEMA}.raw_events "
    "WHERE position > %s ORDER BY position LIMIT %s"
)
BATCH = 5000
WRITERS = 4


@dataclass
class Figure:
    """Events and seconds summed over every round, for the store and for its raw baseline."""

    name: str
    unit: str
    store_events: int = 0
    store_seconds: float = 0.0
    raw_events: int = 0
    raw_seconds: float = 0.0

    @property
    def store(self) -> float:
        return self.store_events / self.store_seconds if self.store_seconds else 0.0

    @property
    def raw(self) -> float:
        return self.raw_events / self.raw_seconds if self.raw_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.store / self.raw if self.raw else 0.0

    def race(self, store_run: Callable[[], int], raw_run: Callable[[], int], round_no: int, chunks: int = 1) -> None:
        """One round: ``chunks`` short runs of each side, alternating (and which side starts
        swaps every round), so that load from other work on a shared machine falls on both
        sides alike instead of on whichever ran during a busy second."""
        sides = [("store", store_run), ("raw", raw_run)]
        if round_no % 2:
            sides.reverse()
        for _ in range(chunks):
            for side, run in sides:
                started = time.perf_counter()
                count = run()
                elapsed = time.perf_counter() - started
                setattr(self, f"{side}_events", getattr(self, f"{side}_events") + count)
                setattr(self, f"{side}_seconds", getattr(self, f"{side}_seconds") + elapsed)


class Streams:
    """Round-robin over many dossier-like streams, tracking each one's version."""

    def __init__(self, prefix: str, count: int):
        self.ids = [f"{prefix}-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        self.versions = dict.fromkeys(self.ids, 0)
        self.i = 0

    def next(self) -> str:
        self.i = (self.i + 1) % len(self.ids)
        return self.ids[self.i]


def _payload(seq: int) -> dict:
    return {"note": NOTE, "sequence": seq}


def _raw_row(stream_id: str, version: int, seq: int, prev: bytes) -> tuple:
    payload = json.dumps(_payload(seq), ensure_ascii=False)
    metadata = json.dumps(CONTEXT.metadata(), ensure_ascii=False)
    event_id = uuid.uuid4()
    occurred = dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(prev + f"{stream_id}{version}{event_id}{payload}{metadata}".encode()).digest()
    return (stream_id, "bench", version, event_id, EVENT_TYPE, 1, payload, metadata, occurred,
            prev, digest)


def store_appends(store: EventStore, streams: Streams, transactions: int, per_tx: int) -> Callable[[], int]:
    def run() -> int:
        seq = 0
        for _ in range(transactions):
            sid = streams.next()
            events = []
            for _ in range(per_tx):
                seq += 1
                events.append(NewEvent(EVENT_TYPE, _payload(seq), 1))
            result = store.append(sid, streams.versions[sid], events, stream_type="bench", context=CONTEXT)
            streams.versions[sid] = result.version
        return transactions * per_tx
    return run


def raw_appends(conn, streams: Streams, transactions: int, per_tx: int) -> Callable[[], int]:
    """Raw psycopg2 in its usual transactional form: the rows in one INSERT, then commit().

    One row is a plain ``INSERT ... VALUES``; several rows go in one multi-row ``INSERT``
    (``execute_values``), the fastest way psycopg2 writes a batch. With ``conn.autocommit``
    set, the BEGIN and COMMIT round trips disappear (the floor for one row).
    """
    prev_of: dict[str, bytes] = {}

    def run() -> int:
        seq = 0
        with conn.cursor() as cur:
            for _ in range(transactions):
                sid = streams.next()
                version = streams.versions[sid]
                prev = prev_of.get(sid, bytes(32))
                rows = []
                for _ in range(per_tx):
                    seq += 1
                    version += 1
                    rows.append(_raw_row(sid, version, seq, prev))
                    prev = rows[-1][-1]
                if per_tx == 1:
                    cur.execute(RAW_INSERT, rows[0])
                else:
                    psycopg2.extras.execute_values(cur, RAW_INSERT_MANY, rows, page_size=per_tx)
                if not conn.autocommit:
                    conn.commit()
                streams.versions[sid] = version
                prev_of[sid] = prev
        return transactions * per_tx
    return run


def in_parallel(runs: list[Callable[[], int]], failures: Failures) -> Callable[[], int]:
    """Run several append loops at once, one thread each (psycopg2 releases the GIL on I/O);
    a loop that raises is added to ``failures`` (a thread's exception would otherwise vanish)."""
    def run() -> int:
        counts = [0] * len(runs)

        def one(i: int) -> None:
            try:
                counts[i] = runs[i]()
            except Exception as exc:
                failures.add(f"parallel append: {type(exc).__name__}: {exc}"[:200])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(runs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts)
    return run


class Replay:
    """One pass over the log, one batch (``BATCH`` events) per call, so that a store batch and
    a raw batch can alternate; each call returns how many events it read (0 at the end)."""

    def __init__(self, batches: Iterator[int]):
        self._batches = batches

    def __call__(self) -> int:
        return next(self._batches, 0)


def store_replay(store: EventStore) -> Replay:
    """``EventStore.iter_all``, consumed event by event as a rebuild does."""
    def batches() -> Iterator[int]:
        events = store.iter_all(0, batch_size=BATCH)
        while True:
            count = sum(1 for _event in itertools.islice(events, BATCH))
            if not count:
                return
            yield count
    return Replay(batches())


def raw_replay(conn) -> Replay:
    """The raw keyset-paginated SELECT of the same rows, tuples as psycopg2 returns them, the
    jsonb columns decoded by the fastest JSON decoder at hand (orjson)."""
    def batches() -> Iterator[int]:
        position = 0
        with conn.cursor() as cur:
            psycopg2.extras.register_default_jsonb(cur, loads=orjson.loads)
            while True:
                cur.execute(RAW_SELECT, (position, BATCH))
                rows = cur.fetchall()
                conn.commit()
                if not rows:
                    return
                position = rows[-1][0]
                yield len(rows)
    return Replay(batches())


def fill_log(store: EventStore, conn, total: int) -> None:
    """Grow the log to ``total`` events (500 per append) and copy it into the raw table."""
    have = store.head_position()
    seq = 0
    while have < total:
        n = min(500, total - have)
        sid = f"fill-{uuid.uuid4().hex[:12]}"
        events = [NewEvent(EVENT_TYPE, _payload(seq + i), 1) for i in range(n)]
        store.append(sid, 0, events, stream_type="bench", context=CONTEXT)
        seq += n
        have += n
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {SCHEMA}.raw_events")
        cur.execute(
            f"INSERT INTO {SCHEMA}.raw_events (position, stream_id, stream_type, version, event_id, "
            "event_type, schema_version, payload, metadata, occurred_at, recorded_at, prev_hash, hash) "
            f"SELECT position, stream_id, stream_type, version, event_id, event_type, schema_version, "
            f"payload, metadata, occurred_at, recorded_at, prev_hash, hash FROM {SCHEMA}.events"
        )
    conn.commit()
    old = conn.autocommit
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {SCHEMA}.events")
        cur.execute(f"VACUUM ANALYZE {SCHEMA}.raw_events")
    conn.autocommit = old


def _print_table(figures: list[Figure], rounds: int, replay_rounds: int, log_size: int) -> None:
    print(f"\nevent store vs raw psycopg2 (events/s over {rounds} interleaved rounds, replay over "
          f"{replay_rounds} rounds of {log_size:,} events)")
    print(f"{'figure':<12} {'store':>10} {'raw':>10} {'ratio':>6}  what")
    for f in figures:
        print(f"{f.name:<12} {f.store:>10,.0f} {f.raw:>10,.0f} {f.ratio:>6.2f}  {f.unit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench store", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (well within a minute)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds per figure (default 12, quick 6)")
    parser.add_argument("--appends", type=int, default=None,
                        help="transactions per side and round (default 400, quick 150)")
    parser.add_argument("--events", type=int, default=None,
                        help="log size for the replay (default 300000, quick 60000)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (6 if args.quick else 12)
    appends = args.appends or (150 if args.quick else 400)
    log_size = args.events or (60_000 if args.quick else 300_000)
    replay_rounds = max(3, rounds // 2)

    failures = Failures()
    with throwaway_database(f"portal_bench_store_{uuid.uuid4().hex[:8]}") as dsn:
        db = None
        conn = None
        try:
            migrate(dsn, SCHEMA)
            db = Database(dsn, SCHEMA, size=2, application_name="bench-store")
            store = EventStore(db, SCHEMA)
            conn = connect(dsn, SCHEMA, application_name="bench-raw")
            with conn.cursor() as cur:
                cur.execute(RAW_TABLE)
            conn.commit()

            print(f"database {dsn.rsplit('/', 1)[1]}: {rounds} rounds of {appends} transactions per side")
            a1 = Figure("append_1", "events/s (1 event/tx)")
            a10 = Figure("append_10", "events/s (10 events/tx)")
            floor = Figure("raw_auto_1", "events/s (1 INSERT in autocommit: no BEGIN/COMMIT trips)")
            par = Figure(f"append_1x{WRITERS}", f"events/s ({WRITERS} writers at once, 1 event/tx; information)")
            rp = Figure("replay", "events/s (read all)")
            store_streams, raw_streams = Streams("dossier", 200), Streams("dossier", 200)
            # warm-up: connections, plans, catalogue
            store_appends(store, store_streams, 50, 1)()
            raw_appends(conn, raw_streams, 50, 1)()
            auto = connect(dsn, SCHEMA, application_name="bench-raw-autocommit")
            auto.autocommit = True
            chunk = 25  # transactions per alternation
            chunks = max(1, appends // chunk)
            for r in range(rounds):
                a1.race(store_appends(store, store_streams, chunk, 1), raw_appends(conn, raw_streams, chunk, 1), r,
                        chunks)
                a10.race(store_appends(store, store_streams, chunk // 5, 10),
                         raw_appends(conn, raw_streams, chunk // 5, 10), r, chunks)
                floor.race(store_appends(store, store_streams, chunk, 1),
                           raw_appends(auto, raw_streams, chunk, 1), r, chunks)
                print(f"  round {r + 1:>2}: append_1 {a1.store:,.0f} vs {a1.raw:,.0f}  "
                      f"append_10 {a10.store:,.0f} vs {a10.raw:,.0f}  autocommit {floor.raw:,.0f}", flush=True)

            auto.close()
            writers_db = Database(dsn, SCHEMA, size=WRITERS, application_name="bench-store-writers")
            writers_store = EventStore(writers_db, SCHEMA)
            raw_conns = [connect(dsn, SCHEMA, application_name="bench-raw-writer") for _ in range(WRITERS)]
            store_sets = [Streams(f"w{i}", 50) for i in range(WRITERS)]
            raw_sets = [Streams(f"w{i}", 50) for i in range(WRITERS)]
            try:
                for r in range(max(2, rounds // 2)):
                    par.race(in_parallel([store_appends(writers_store, st, chunk, 1) for st in store_sets], failures),
                             in_parallel([raw_appends(c, st, chunk, 1)
                                          for c, st in zip(raw_conns, raw_sets, strict=True)], failures),
                             r, chunks)
                print(f"  {WRITERS} writers: append_1 {par.store:,.0f} vs {par.raw:,.0f}", flush=True)
            finally:
                for c in raw_conns:
                    c.close()
                writers_db.close()
            fill_log(store, conn, log_size)
            events = store.head_position()
            batches_per_pass = -(-events // BATCH) + 1  # the last call finds the end
            for r in range(replay_rounds):
                rp.race(store_replay(store), raw_replay(conn), r, batches_per_pass)
                print(f"  round {r + 1:>2}: replay {rp.store:,.0f} vs {rp.raw:,.0f}", flush=True)

            if rp.store_events != replay_rounds * events or rp.raw_events != replay_rounds * events:
                failures.add(f"replay read {rp.store_events} (store) and {rp.raw_events} (raw) events, "
                             f"not {replay_rounds} x {events}")
            figures = [a1, a10, floor, par, rp]
            _print_table(figures, rounds, replay_rounds, events)
            append_ratio = min(a1.ratio, a10.ratio)
            verdict = "met" if append_ratio >= 0.8 and rp.ratio >= 0.5 else "MISSED"
            print(f"targets (append >= 0.80, replay >= 0.50): {verdict}")
            return finish(
                "store",
                f"append_1_per_s={a1.store:.0f} raw_insert_1_per_s={a1.raw:.0f} "
                f"append_1_ratio={a1.ratio:.2f} append_10_per_s={a10.store:.0f} "
                f"raw_insert_10_per_s={a10.raw:.0f} append_10_ratio={a10.ratio:.2f} "
                f"append_ratio={append_ratio:.2f} replay_per_s={rp.store:.0f} "
                f"raw_select_per_s={rp.raw:.0f} replay_ratio={rp.ratio:.2f} events={events} "
                f"raw_insert_1_autocommit_per_s={floor.raw:.0f} append_1_vs_autocommit_ratio={floor.ratio:.2f} "
                f"append_1x{WRITERS}_per_s={par.store:.0f} raw_insert_1x{WRITERS}_per_s={par.raw:.0f} "
                f"append_1x{WRITERS}_ratio={par.ratio:.2f}",
                failures,
            )
        finally:
            if conn is not None:
                conn.close()
            if db is not None:
                db.close()
