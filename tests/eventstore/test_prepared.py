"""Statements marked ``Prepared`` run by name on pooled connections
(``portal_common.prepared``), with the same results, rows and failures as plain text."""

from __future__ import annotations

import uuid

import psycopg2
import psycopg2.errors
import pytest
from psycopg2.extras import Json

from portal_common import prepared
from portal_common.db import CommittingCursor, Database, Prepared, StatementBatch
from portal_common.prepared import PreparedStatements
from tests.support.round_trips import count_round_trips

INSERT = Prepared("INSERT INTO notes (id, owner, body, tags) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING")
BY_OWNER = Prepared("SELECT id, body FROM notes WHERE owner = %(owner)s AND id >= %(least)s ORDER BY id")


def _notes(db: Database) -> None:
    with db.transaction() as cur:
        cur.execute("CREATE TABLE notes (id int PRIMARY KEY, owner uuid, body jsonb, tags text[])")


def _server_statements(cur) -> list[tuple[str, str]]:
    """(name, parameter types) of the statements the server holds for this session."""
    cur.execute("SELECT name, parameter_types::text AS types FROM pg_prepared_statements ORDER BY name")
    return [(r["name"], r["types"]) for r in cur.fetchall()]


def test_a_marked_statement_is_prepared_once_and_then_executed_by_name(fresh_schema):
    db = fresh_schema("ps")
    _notes(db)
    owner = uuid.uuid4()
    with db.transaction() as cur:
        cur.execute(INSERT, (1, owner, Json({"a": 1}), None))
        assert cur.query.startswith(b"BEGIN;EXECUTE portal_")  # BEGIN still rides with it
        first = cur.query.split(b"(")[0]
        cur.execute(INSERT, (2, str(owner), '{"b": 2}', None))
        assert cur.query.split(b"(")[0] == first.removeprefix(b"BEGIN;")
        assert cur.rowcount == 1
        cur.execute(BY_OWNER, {"owner": owner, "least": 1})
        assert [(r["id"], r["body"]) for r in cur.fetchall()] == [(1, {"a": 1}), (2, {"b": 2})]
        assert cur.description[0].name == "id"
        # each placeholder typed by its column, a named one once however often it appears
        assert _server_statements(cur) == [("portal_1", "{integer,uuid,jsonb,text[]}"),
                                           ("portal_2", "{uuid,integer}")]
        cur.execute(INSERT, (1, owner, Json({}), None))
        assert cur.rowcount == 0  # the command tag of the statement, through EXECUTE


def test_lists_go_as_array_text_that_takes_the_parameters_array_type(fresh_schema):
    db = fresh_schema("ps")
    _notes(db)
    tricky = ['a "quoted", {braced} word', "back\\slash", "", None, "Đăng ký khai sinh", "NULL"]
    owners = [uuid.uuid4(), uuid.uuid4()]
    with db.transaction() as cur:
        cur.execute(INSERT, (1, owners[0], None, tricky))
        cur.execute(INSERT, (2, str(owners[1]), None, []))
        assert cur.query.startswith(b"EXECUTE portal_")
        by_owners = Prepared("SELECT id, tags FROM notes WHERE owner = ANY(%s::uuid[]) ORDER BY id")
        cur.execute(by_owners, ([str(owners[0]), owners[1]],))  # an ARRAY['...'] would be a text[]
        assert cur.query.startswith(b"EXECUTE portal_")
        assert [(r["id"], r["tags"]) for r in cur.fetchall()] == [(1, tricky), (2, [])]
        cur.execute(Prepared("SELECT %s::float8[] AS v"), ([1.5, 2.5],))  # floats: no array text here
        assert cur.query.startswith(b"SELECT ARRAY[1.5") and cur.fetchone()["v"] == [1.5, 2.5]


def test_an_unmarked_statement_runs_as_plain_text(fresh_schema):
    db = fresh_schema("ps")
    _notes(db)
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM notes WHERE id = %s", (1,))
        assert cur.query.startswith(b"BEGIN;SELECT count")
        cur.execute(Prepared("SELECT count(*) AS n FROM notes"))  # marked, without parameters
        assert cur.query == b"EXECUTE portal_1" and cur.fetchone()["n"] == 0
        assert len(cur.connection.prepared) == 1


def test_a_statement_the_server_will_not_prepare_runs_as_text_and_the_transaction_goes_on(fresh_schema,
                                                                                         monkeypatch):
    monkeypatch.setattr(prepared, "_REFUSED", set())  # a refusal of its own, not the run's
    db = fresh_schema("ps")
    _notes(db)
    unknown_type = Prepared("SELECT count(*) AS n FROM notes WHERE %s IS NULL")
    with db.transaction() as cur:
        cur.execute(INSERT, (1, None, None, None))
        cur.execute(unknown_type, (None,))  # refused inside the transaction: its savepoint is undone
        assert cur.fetchone()["n"] == 1
        cur.execute(INSERT, (2, None, None, None))
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM notes")
        assert cur.fetchone()["n"] == 2  # both inserts committed
        cur.execute(unknown_type, (None,))  # remembered as refused: no second try
        assert cur.query.startswith(b"SELECT count")


def test_a_failing_execution_rolls_back_and_the_name_stays_usable(fresh_schema):
    db = fresh_schema("ps")
    _notes(db)
    strict = Prepared("INSERT INTO notes (id, owner) VALUES (%s, %s)")
    with db.transaction() as cur:
        cur.execute(strict, (1, None))
    with pytest.raises(psycopg2.errors.UniqueViolation), db.transaction() as cur:
        cur.execute(strict, (2, None))
        cur.execute(strict, (1, None))
    with db.transaction() as cur:  # PREPARE is not undone by a rollback: the name still runs
        cur.execute(strict, (3, None))
        assert cur.query.startswith(b"BEGIN;EXECUTE portal_1(")
        cur.execute("SELECT array_agg(id ORDER BY id) AS ids FROM notes")
        assert cur.fetchone()["ids"] == [1, 3]


def test_batched_and_committing_cursors_send_marked_statements_by_name(fresh_schema):
    db = fresh_schema("ps")
    _notes(db)
    with db.transaction() as cur:
        writes = StatementBatch(cur.connection.cursor())
        writes.execute(INSERT, (1, None, None, None))
        writes.execute(INSERT, (2, None, None, None))
        writes.send()
        assert cur.connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        CommittingCursor(cur).execute(INSERT, (3, None, None, None))
        assert cur.query.startswith(b"EXECUTE portal_1(3") and cur.query.endswith(b";COMMIT")
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM notes")
        assert cur.fetchone()["n"] == 3


def test_a_read_after_the_commit_rides_in_the_same_round_trip(fresh_schema, monkeypatch):
    """``read_after``: a value the writes left in a session setting is read after the
    ``COMMIT``, in the commit's own round trip; a rollback takes the setting back too."""
    db = fresh_schema("ps")
    _notes(db)
    trips = count_round_trips(monkeypatch)
    with db.transaction() as cur:
        writes = StatementBatch(cur.connection.cursor())
        writes.execute(INSERT, (1, None, None, None))
        writes.execute("SELECT set_config('test.noted', '1', false)")
        writes.read_after("SELECT current_setting('test.noted', true) AS noted")
        trips.clear()
        writes.send(commit=True)
        assert writes.after_row[0] == "1"
        assert trips == ["statement"]
        assert writes._cursor.query.endswith(b";COMMIT;SELECT current_setting('test.noted', true) AS noted")
        writes.send()  # nothing more to send: the value read stays
        assert writes.after_row[0] == "1"
    with pytest.raises(psycopg2.errors.UniqueViolation), db.transaction() as cur:
        writes = StatementBatch(cur.connection.cursor())
        writes.execute("SELECT set_config('test.noted', '2', false)")
        writes.execute("INSERT INTO notes (id) VALUES (1)")
        writes.read_after("SELECT current_setting('test.noted', true) AS noted")
        writes.send(commit=True)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('test.noted', true)")
        assert cur.fetchone()[0] in ("1", None, "")  # never the rolled-back '2'
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM notes")
        assert cur.fetchone()["n"] == 1


def test_preparing_can_be_turned_off(fresh_schema, monkeypatch):
    monkeypatch.setenv("DB_PREPARE", "0")
    assert not PreparedStatements().enabled
    db = fresh_schema("ps")
    _notes(db)
    with db.transaction() as cur:
        cur.execute(INSERT, (1, None, None, None))
        assert b"INSERT INTO notes" in cur.query
        assert _server_statements(cur) == []


def test_placeholders_and_percent_signs_take_the_servers_form():
    from portal_common.prepared import _Form
    form = _Form("SELECT a FROM t WHERE b LIKE 'x%%' AND c = %s AND d = %s")
    assert form.server_text == "SELECT a FROM t WHERE b LIKE 'x%' AND c = $1 AND d = $2"
    assert form.arguments == "(%s, %s)"
    named = _Form("UPDATE t SET a = %(a)s WHERE b = %(b)s AND c <> %(a)s")
    assert named.server_text == "UPDATE t SET a = $1 WHERE b = $2 AND c <> $1"
    assert named.arguments == "(%(a)s, %(b)s)" and named.named
    with pytest.raises(ValueError):
        _Form("SELECT %s, %(a)s")
