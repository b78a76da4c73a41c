"""A pool opens its floor of connections ahead of the first requests, as its service starts.

A restarted or added process (a new replica under the autoscaler) otherwise starts a
backend in each of its first requests' time, the cost ``python -m bench pool`` measures.
These run on the real PostgreSQL; the service-level ones give ``Storage`` a stand-in
container that runs its managed thread at once.
"""

from __future__ import annotations

import psycopg2
import pytest

from portal_common.db import Database
from portal_common.nameko_ext import Storage
from tests.support.processes import wait_for
from tests.support.threads import all_at_once

pytestmark = pytest.mark.integration


def _backends(db: Database) -> int:
    """Connections the server holds open for this pool's application name."""
    with psycopg2.connect(db.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (db.application_name,))
        count = cur.fetchone()[0]
    conn.close()
    return count


def test_open_floor_opens_min_idle_connections_that_the_next_requests_use(fresh_schema):
    db = fresh_schema("f")
    pool = Database(db.dsn, db.schema, size=4, min_idle=3, application_name=f"floor-{db.schema}")
    try:
        assert (pool.open_connections, _backends(pool)) == (0, 0)
        assert pool.open_floor() == 3
        assert (pool.idle_connections, pool.open_connections, _backends(pool)) == (3, 3, 3)
        assert pool.open_floor() == 0  # the floor is there: nothing more
        ahead = list(conn for conn, _ in pool._idle)
        with pool.connection() as a, pool.connection() as b, pool.connection() as c:
            assert {a, b, c} == set(ahead)  # the first requests open nothing of their own
            assert pool.open_floor() == 1  # three borrowed: one more waits, and the pool is full
        assert (pool.open_connections, _backends(pool)) == (4, 4)
    finally:
        pool.close()
    assert pool.open_connections == 0 and all(conn.closed for conn in ahead)


def test_open_floor_never_takes_the_pool_past_its_size(fresh_schema):
    db = fresh_schema("f")
    pool = Database(db.dsn, db.schema, size=2, min_idle=2, application_name=f"floor-{db.schema}")
    try:
        with pool.connection(), pool.connection():
            assert pool.open_floor() == 0  # every slot borrowed
        assert pool.open_connections == 2
        assert pool.open_floor() == 0  # both idle now: the floor holds
    finally:
        pool.close()


def test_a_floor_opened_beside_requests_stays_within_the_pool_size(fresh_schema):
    db = fresh_schema("f")
    for attempt in range(5):
        pool = Database(db.dsn, db.schema, size=2, min_idle=2, application_name=f"floor-{attempt}-{db.schema}")
        try:
            # an empty pool met at once by floor openers and requests
            results, errors = all_at_once(lambda i, pool=pool: pool.open_floor() if i % 2 else pool.ping(), 8)
            assert errors == [] and sum(r is True for r in results) == 4  # every request was served
            assert pool.open_connections <= 2 and _backends(pool) <= 2
        finally:
            pool.close()


def test_open_floor_stops_quietly_when_the_server_refuses(monkeypatch):
    monkeypatch.setenv("DB_CONNECT_RETRY_SECONDS", "0.3")
    pool = Database("postgresql://postgres@127.0.0.1:1/nowhere", "dossier", size=4, min_idle=4)
    assert pool.open_floor() == 0
    assert (pool.open_connections, pool.idle_connections) == (0, 0)
    assert all(pool._slots.acquire(blocking=False) for _ in range(4))  # no slot was kept


def test_a_closed_pool_opens_nothing(fresh_schema):
    db = fresh_schema("f")
    pool = Database(db.dsn, db.schema, size=3, min_idle=3)
    pool.close()
    assert pool.open_floor() == 0 and pool.open_connections == 0


def test_connections_counted_out_when_they_die_or_go_stale(fresh_schema):
    db = fresh_schema("f")
    pool = Database(db.dsn, db.schema, size=3, min_idle=1, idle_timeout=-1)
    try:
        with pool.connection(), pool.connection(), pool.connection():
            pass
        assert (pool.open_connections, pool.idle_connections) == (1, 1)  # two went stale
        with pool.connection() as conn:
            conn.close()  # broken while borrowed: dropped, not given back
        assert pool.open_connections == 0
        assert pool.ping() and pool.open_connections == 1
    finally:
        pool.close()


class _Container:
    """What ``Storage`` reads of a nameko container; runs a managed thread at once."""

    def __init__(self, dsn: str, service_name: str):
        self.config = {"DATABASE_URL": dsn}
        self.service_name = service_name
        self.threads: list[str] = []

    def spawn_managed_thread(self, run, identifier=None):
        self.threads.append(identifier)
        run()


def test_a_service_opens_its_pool_floor_as_it_starts(fresh_schema, monkeypatch):
    db = fresh_schema("f")
    monkeypatch.setenv(f"{db.schema.upper()}_DB_POOL_MIN_IDLE", "3")
    storage = Storage(schema=db.schema, size=6)
    storage.container = _Container(db.dsn, f"floor-{db.schema}")
    storage.setup()
    try:
        assert _backends(storage.db) == 0  # set up, not started: nothing open yet
        storage.start()
        assert storage.container.threads == [f"{db.schema}-pool-floor"]
        assert storage.db.idle_connections == 3 and _backends(storage.db) == 3
    finally:
        storage.stop()
    wait_for(lambda: _backends(storage.db) == 0, timeout=10, what="the backends gone")  # they end after the close


def test_a_service_starts_though_its_database_is_away(monkeypatch):
    monkeypatch.setenv("DB_CONNECT_RETRY_SECONDS", "0.3")
    storage = Storage(schema="dossier", size=2)
    storage.container = _Container("postgresql://postgres@127.0.0.1:1/nowhere", "floor-away")
    storage.setup()
    storage.start()  # neither raises nor leaves anything open
    assert storage.db.open_connections == 0
    storage.stop()


def _pool_samples(schema: str, name: str) -> dict[tuple[str, str], float]:
    from portal_common.metrics import COLLECTOR

    return {(s.name, s.labels.get("state", "")): s.value for family in COLLECTOR.collect()
            for s in family.samples if s.name.startswith("portal_db_pool")
            and (s.labels["service"], s.labels["pool"]) == (schema, name)}


def test_the_metrics_show_each_pool_open_connections_by_state_and_its_size(fresh_schema):
    db = fresh_schema("f")
    pool = Database(db.dsn, db.schema, size=3, min_idle=2, name="events")
    try:
        assert pool.open_floor() == 2
        with pool.connection():
            assert _pool_samples(db.schema, "events") == {
                ("portal_db_pool_connections", "idle"): 1, ("portal_db_pool_connections", "borrowed"): 1,
                ("portal_db_pool_size", ""): 3}
        assert _pool_samples(db.schema, "events")[("portal_db_pool_connections", "idle")] == 2
    finally:
        pool.close()
    assert _pool_samples(db.schema, "events") == {}  # a closed pool is no longer shown
