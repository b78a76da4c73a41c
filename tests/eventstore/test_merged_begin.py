"""Pooled connections open their transactions in the first statement's round trip
(``portal_common.db.MergedBeginConnection``) with psycopg2's transaction semantics intact,
and the dossier's submit transaction sends its queued writes and COMMIT with the append."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

from portal_common.db import CommittingCursor, Database, DatabaseUnavailable
from portal_common.eventstore import ConcurrencyError, EventStore
from portal_common.eventstore.events import EventContext
from services.dossier.repository import PgRepository
from tests.eventstore.conftest import probes


def _notes(db: Database) -> None:
    with db.transaction() as cur:
        cur.execute("CREATE TABLE notes (id int PRIMARY KEY)")


def _count(db: Database) -> int:
    with db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT count(*) FROM notes")
        return cur.fetchone()[0]


def test_the_first_statement_carries_begin_and_the_next_ones_do_not(fresh_schema):
    db = fresh_schema("mb")
    with db.transaction(dict_rows=False) as cur:
        assert cur.connection.info.transaction_status == TRANSACTION_STATUS_IDLE
        cur.execute("SELECT 1")
        assert cur.query == b"BEGIN;SELECT 1"  # one round trip, not two
        assert cur.connection.info.transaction_status == TRANSACTION_STATUS_INTRANS
        cur.execute("SELECT 2")
        assert cur.query == b"SELECT 2"
        conn = cur.connection
    assert conn.info.transaction_status == TRANSACTION_STATUS_IDLE  # committed


def test_a_failing_statement_rolls_back_the_whole_transaction(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    with pytest.raises(psycopg2.errors.UniqueViolation), db.transaction() as cur:
        cur.execute("INSERT INTO notes VALUES (1)")
        cur.execute("INSERT INTO notes VALUES (2)")
        cur.execute("INSERT INTO notes VALUES (1)")
    assert _count(db) == 0
    with db.connection() as conn:  # handed back clean, outside any transaction
        assert conn.info.transaction_status == TRANSACTION_STATUS_IDLE


def test_a_raise_in_the_block_rolls_back_statements_already_sent(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    with pytest.raises(RuntimeError), db.transaction() as cur:
        cur.execute("INSERT INTO notes VALUES (1)")
        raise RuntimeError("changed my mind")
    assert _count(db) == 0


def test_a_second_cursor_of_the_connection_joins_the_same_transaction(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    with pytest.raises(RuntimeError), db.transaction() as cur:
        other = cur.connection.cursor()
        other.execute("INSERT INTO notes VALUES (1)")  # the first statement, on the other cursor
        assert other.query.startswith(b"BEGIN;")
        cur.execute("INSERT INTO notes VALUES (2)")
        assert not cur.query.startswith(b"BEGIN;")
        raise RuntimeError("roll both back")
    assert _count(db) == 0


def test_autocommit_sends_no_begin_and_each_statement_commits(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    with db.connection() as conn:
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO notes VALUES (1)")
                assert cur.query == b"INSERT INTO notes VALUES (1)"
                assert conn.info.transaction_status == TRANSACTION_STATUS_IDLE
        finally:
            conn.autocommit = False
    assert _count(db) == 1


def test_a_statement_on_its_own_is_one_round_trip_committed_by_the_server(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    assert db.statement("INSERT INTO notes VALUES (1), (2) RETURNING id") == [{"id": 1}, {"id": 2}]
    assert db.statement("DELETE FROM notes WHERE id = 2") == []  # no rows to return
    assert _count(db) == 1  # committed, with no COMMIT of its own
    with pytest.raises(psycopg2.errors.UniqueViolation):
        db.statement("INSERT INTO notes VALUES (3), (1)")
    assert _count(db) == 1  # all of the statement or nothing
    with db.connection() as conn:  # handed back clean and no longer in autocommit
        assert conn.info.transaction_status == TRANSACTION_STATUS_IDLE and conn.autocommit is False
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.query == b"BEGIN;SELECT 1"
        conn.rollback()
    with pytest.raises(DatabaseUnavailable) as lost:
        db.statement("SELECT pg_terminate_backend(pg_backend_pid())")
    assert lost.value.retry_safe is False  # it may have committed


def test_a_connection_lost_after_commit_was_sent_is_not_safe_to_run_again(fresh_schema):
    db = fresh_schema("mb")
    with pytest.raises(DatabaseUnavailable) as before, db.transaction() as cur:
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert before.value.retry_safe is True
    with pytest.raises(DatabaseUnavailable) as after, db.transaction() as cur:
        cur.connection.commit_sent = True  # as the dossier's submit does before its last round trip
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert after.value.retry_safe is False


def test_queued_writes_the_append_and_commit_go_in_one_round_trip(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    log, repo = EventStore(db), PgRepository(db)
    with repo.transaction() as tx:
        tx.defer("INSERT INTO notes VALUES (%s)", (1,))
        tx.defer("INSERT INTO notes VALUES (%s)", (2,))
        repo.commit_with_next(tx)
        result = log.append("s-1", 0, probes(1, 2), context=EventContext(), cursor=tx.cursor)
        sent = tx._cur.query
        assert tx._cur.connection.info.transaction_status == TRANSACTION_STATUS_IDLE  # committed
    assert sent.startswith(b"BEGIN;INSERT INTO notes") and sent.endswith(b"COMMIT")
    assert result.version == 2
    assert _count(db) == 2 and len(log.read_stream("s-1")) == 2


def test_a_queued_write_that_fails_with_the_append_is_not_taken_for_a_conflict(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    log, repo = EventStore(db), PgRepository(db)
    with pytest.raises(psycopg2.errors.UniqueViolation), repo.transaction() as tx:
        tx.defer("INSERT INTO notes VALUES (%s)", (1,))
        tx.defer("INSERT INTO notes VALUES (%s)", (1,))
        repo.commit_with_next(tx)
        log.append("s-1", 0, probes(1, 1), context=EventContext(), cursor=tx.cursor)
    assert _count(db) == 0 and log.read_stream("s-1") == []
    log.append("s-1", 0, probes(1, 1))
    with pytest.raises(ConcurrencyError), repo.transaction() as tx:  # the log's own conflict still is one
        tx.defer("INSERT INTO notes VALUES (%s)", (3,))
        log.append("s-1", 0, probes(2, 1), context=EventContext(), cursor=tx.cursor)
    assert _count(db) == 0


def test_a_committing_cursor_sends_the_append_and_commit_together(fresh_schema):
    db = fresh_schema("mb")
    _notes(db)
    log = EventStore(db)
    with db.transaction(dict_rows=False) as cur:
        cur.execute("INSERT INTO notes VALUES (1)")
        plain = cur.connection.cursor()
        result = log.append("s-1", None, probes(1, 1), context=EventContext(), cursor=CommittingCursor(plain))
        assert plain.query.endswith(b";COMMIT")
        assert cur.connection.info.transaction_status == TRANSACTION_STATUS_IDLE  # committed already
    assert result.version == 1  # known without the append's rows
    assert _count(db) == 1 and len(log.read_stream("s-1")) == 1
    with pytest.raises(ConcurrencyError), db.transaction(dict_rows=False) as cur:  # a refused append commits nothing
        cur.execute("INSERT INTO notes VALUES (2)")
        log.append("s-1", 0, probes(2, 1), context=EventContext(), cursor=CommittingCursor(cur.connection.cursor()))
    assert _count(db) == 1
