"""The pool, database creation and migrations the event store stands on."""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest

from portal_common.db import Database, drop_database, ensure_database
from portal_common.migrations import migrate
from tests.support.threads import all_at_once

pytestmark = pytest.mark.integration


def _server(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0]


def test_concurrent_ensure_database_creates_once_and_never_fails(database_url):
    dsn = f"{_server(database_url)}/portal_test_race_{uuid.uuid4().hex[:8]}"
    try:
        created, errors = all_at_once(lambda _: ensure_database(dsn), 4)
        assert sorted([*created, *errors], key=str) == [False, False, False, True]
    finally:
        drop_database(dsn)


def test_concurrent_migrations_of_one_schema_apply_once(database_url):
    schema = f"m_{uuid.uuid4().hex[:10]}"
    _, errors = all_at_once(lambda _: migrate(database_url, schema, "services.dossier", create_database=False), 3)
    assert errors == []
    db = Database(database_url, schema, size=1)
    try:
        with db.transaction() as cur:
            cur.execute("SELECT name, count(*) AS n FROM schema_migrations GROUP BY name")
            rows = cur.fetchall()
        assert rows and all(r["n"] == 1 for r in rows)
        assert migrate(database_url, schema, "services.dossier", create_database=False) == []
    finally:
        db.close()


def test_failed_transaction_rolls_back_and_the_connection_is_reused_clean(fresh_schema):
    db = fresh_schema("p")
    with db.transaction() as cur:
        cur.execute("CREATE TABLE notes (id int PRIMARY KEY)")
    with pytest.raises(psycopg2.errors.UniqueViolation), db.transaction() as cur:
        cur.execute("INSERT INTO notes VALUES (1)")
        cur.execute("INSERT INTO notes VALUES (1)")
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM notes")
        assert cur.fetchone()["n"] == 0


def test_broken_connection_is_dropped_not_handed_out_again(fresh_schema):
    db = fresh_schema("p")
    with db.connection() as conn:
        first_pid = conn.get_backend_pid()
    killer = Database(db.dsn, db.schema, size=1)
    try:
        with killer.transaction() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    finally:
        killer.close()
    time.sleep(0.2)  # the server's goodbye reaches the idle connection
    with db.transaction() as cur:  # noticed when borrowed: the statement runs on a fresh one
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone()["one"] == 1
    assert db.ping()  # a new connection, not the dead one
    with db.connection() as conn:
        assert conn.get_backend_pid() != first_pid


def test_pool_hands_out_at_most_size_connections(fresh_schema):
    db = fresh_schema("p")
    small = Database(db.dsn, db.schema, size=2)
    try:
        with small.connection() as a, small.connection() as b:
            assert a is not b
            assert not small._slots.acquire(blocking=False)  # a third borrower would wait
        assert small._slots.acquire(blocking=False)  # released again
        small._slots.release()
        with small.connection() as again:
            assert again in (a, b)  # idle connections are reused
    finally:
        small.close()


def test_connections_left_unused_past_the_idle_timeout_are_closed(fresh_schema):
    db = fresh_schema("p")
    keep = Database(db.dsn, db.schema, size=3, idle_timeout=3600)
    prune = Database(db.dsn, db.schema, size=3, idle_timeout=-1, min_idle=1)  # everything is "stale" at once
    try:
        for pool in (keep, prune):
            with pool.connection() as a, pool.connection() as b, pool.connection() as c:
                borrowed = (a, b, c)
            pool.borrowed = borrowed
        assert keep.idle_connections == 3 and not any(conn.closed for conn in keep.borrowed)
        assert prune.idle_connections == 1  # the most recently returned one stays
        assert sum(1 for conn in prune.borrowed if conn.closed) == 2
        assert prune.ping()
    finally:
        keep.close()
        prune.close()
    assert keep.idle_connections == 0 and all(conn.closed for conn in keep.borrowed)


def test_a_quiet_pool_keeps_its_floor_of_most_recently_used_connections(fresh_schema):
    """Past the idle timeout a pool closes what a burst opened, down to ``min_idle``: the
    connections used last stay open (warm) for the next burst."""
    db = fresh_schema("p")
    pool = Database(db.dsn, db.schema, size=5, idle_timeout=-1, min_idle=3)
    try:
        with pool.connection() as a, pool.connection() as b, pool.connection() as c, \
                pool.connection() as d, pool.connection() as e:
            borrowed = [a, b, c, d, e]
        # given back e, d, c, b, a (innermost first): a, b and c were used last
        assert pool.idle_connections == 3
        assert [conn.closed for conn in borrowed] == [False, False, False, True, True]
        with pool.connection() as again:
            assert again is a and not again.closed
    finally:
        pool.close()


def test_the_pool_floor_and_timeout_come_from_the_environment_per_service(fresh_schema, monkeypatch):
    db = fresh_schema("p")
    monkeypatch.setenv("DB_POOL_MIN_IDLE", "2")
    monkeypatch.setenv("DB_POOL_IDLE_TIMEOUT", "90")
    monkeypatch.setenv(f"{db.schema.upper()}_DB_POOL_MIN_IDLE", "7")
    assert Database(db.dsn, db.schema, size=10).min_idle == 7  # the service's own beats the shared one
    assert Database(db.dsn, db.schema, size=5).min_idle == 5  # never more than the pool holds
    assert Database(db.dsn, "other", size=10).min_idle == 2
    assert Database(db.dsn, "other", size=10).idle_timeout == 90.0
    monkeypatch.setenv("DB_POOL_MIN_IDLE", "0")
    assert Database(db.dsn, "other", size=10).min_idle == 1  # the last one used always stays
    monkeypatch.delenv("DB_POOL_MIN_IDLE")
    monkeypatch.delenv("DB_POOL_IDLE_TIMEOUT")
    defaults = Database(db.dsn, "other", size=10)
    assert (defaults.min_idle, defaults.idle_timeout) == (4, 600.0)


def test_connect_waits_for_a_full_server_but_not_for_a_wrong_one(monkeypatch, database_url):
    """'too many clients' is asked again (a burst elsewhere); a real refusal fails at once."""
    import portal_common.db as dbmod

    real = psycopg2.connect
    calls = {"n": 0}

    def full_twice(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise psycopg2.OperationalError('FATAL:  sorry, too many clients already')
        return real(*args, **kwargs)

    monkeypatch.setattr(dbmod.psycopg2, "connect", full_twice)
    conn = dbmod.connect(database_url)
    try:
        assert calls["n"] == 3 and not conn.closed
    finally:
        conn.close()

    def refused(*args, **kwargs):
        calls["n"] += 1
        raise psycopg2.OperationalError('FATAL:  password authentication failed for user "x"')

    calls["n"] = 0
    monkeypatch.setattr(dbmod.psycopg2, "connect", refused)
    with pytest.raises(dbmod.DatabaseUnavailable) as refusal:  # typed: a 503 to callers, never a 500
        dbmod.connect(database_url)
    assert calls["n"] == 1
    assert isinstance(refusal.value.__cause__, psycopg2.OperationalError)

    calls["n"] = 0
    monkeypatch.setenv("DB_CONNECT_RETRY_SECONDS", "0.3")
    def always_full(*args, **kwargs):
        calls["n"] += 1
        raise psycopg2.OperationalError("FATAL:  sorry, too many clients already")

    monkeypatch.setattr(dbmod.psycopg2, "connect", always_full)
    with pytest.raises(dbmod.DatabaseUnavailable) as full:
        dbmod.connect(database_url)
    assert 1 < calls["n"] < 10  # asked again for a while, then gave up
    assert "too many clients" in str(full.value.__cause__)
