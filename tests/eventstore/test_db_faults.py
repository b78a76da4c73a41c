"""The pool after the database dropped its connections (as a restart does): a dead idle
connection is replaced when borrowed, a connection that breaks in use surfaces as the typed
``DatabaseUnavailable`` (a 503, never a 500), and the pool works again without a restart."""

from __future__ import annotations

import time

import psycopg2
import pytest

from gateway.http.problems import http_status
from portal_common.db import Database, DatabaseUnavailable, alive, connect

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(fresh_schema):
    db = fresh_schema("dbf")
    yield db
    db.close()


@pytest.fixture
def admin(database_url):
    conn = connect(database_url, application_name="test-terminator")
    conn.autocommit = True
    yield conn
    conn.close()


def _pid(cur) -> int:
    cur.execute("SELECT pg_backend_pid() AS pid")
    return cur.fetchone()["pid"]


def _terminate(admin, *pids: int) -> None:
    with admin.cursor() as cur:
        for pid in pids:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)  # the goodbye reaches the client sockets


def _still_serves(pool: Database) -> None:
    """A connection borrowed from the pool answers a query."""
    with pool.transaction() as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone()["one"] == 1


def test_idle_connections_the_server_closed_are_replaced_when_borrowed(pool, admin):
    with pool.transaction() as a, pool.transaction() as b:  # two idle connections afterwards
        pids = {_pid(a), _pid(b)}
    assert pool.idle_connections == 2
    _terminate(admin, *pids)
    for _ in range(3):  # every borrow works, on fresh connections
        with pool.transaction() as cur:
            assert _pid(cur) not in pids


def test_a_connection_that_breaks_mid_transaction_is_typed_and_safe_to_retry(pool, admin):
    with pytest.raises(DatabaseUnavailable) as err, pool.transaction() as cur:
        _terminate(admin, _pid(cur))
        cur.execute("SELECT 1")
    assert err.value.retry_safe and http_status(err.value) == 503 and err.value.code == "service_unavailable"
    _still_serves(pool)  # the broken connection was dropped, not pooled


def test_a_refused_statement_is_not_mistaken_for_a_lost_connection(pool):
    with pytest.raises(psycopg2.errors.QueryCanceled), pool.transaction() as cur:
        cur.execute("SET LOCAL statement_timeout = 10")
        cur.execute("SELECT pg_sleep(1)")
    _still_serves(pool)


def test_a_database_that_is_away_answers_typed_and_ping_says_false(monkeypatch):
    monkeypatch.setenv("DB_CONNECT_RETRY_SECONDS", "0.3")
    away = Database("postgresql://postgres@127.0.0.1:1/none", "public", size=1)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as err, away.transaction():
        pass
    assert err.value.retry_safe  # nothing can have happened
    assert time.monotonic() - started < 5
    assert away.ping() is False


def test_alive_tells_a_closed_connection(database_url, admin):
    conn = connect(database_url, application_name="test-alive")
    try:
        assert alive(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        conn.commit()
        _terminate(admin, pid)
        assert not alive(conn)
    finally:
        conn.close()
