"""A filing's code drawn in its commit's round trip, on real PostgreSQL: the agency's counter is
free until that round trip, the code has its usual form and nothing keeps the stand-in."""

from __future__ import annotations

import datetime as dt

import psycopg2
import psycopg2.errors
import pytest

from services.dossier.domain.calendar import local_date
from services.dossier.domain.codes import format_code, parse_code, stream_id
from tests.dossier.conftest import submit
from tests.support.round_trips import count_round_trips

AGENCY = "H29.01"
CODE_COLUMNS = {"documents": "dossier_code", "dossier_status": "code", "owner_dossiers": "code",
                "agency_queue": "code", "idempotency_keys": "code"}


def file(repo, *, key: str | None = None, also=None, owner: str = "acc-1"):
    return submit(repo, owner=owner, agency=AGENCY, key=key, also=also)


def codes_held(repo) -> dict[str, list[str]]:
    """Every code each table holds, and the stream ids and payload codes of the log."""
    with repo.repository.db.transaction(dict_rows=False) as cur:
        found = {}
        for table, column in CODE_COLUMNS.items():
            cur.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1")
            found[table] = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT stream_id, payload->>'code', payload::text FROM events ORDER BY position")
        found["events"] = [f"{sid}|{code}" for sid, code, _ in cur.fetchall()]
    return found


def test_the_counter_is_free_until_the_commit_and_the_stand_in_is_replaced_everywhere(repo, database_url):
    file(repo, key="warm-up")  # the counter row exists from here on
    seen = {}

    def probe(tx, code, now):
        # Another connection locks the agency's counter row at once: the filing does not hold it.
        seen["stand_in"] = code
        other = psycopg2.connect(database_url)
        try:
            with other.cursor() as cur:
                cur.execute("SET search_path TO " + repo.repository.db.schema)
                cur.execute("SELECT last_value FROM code_counters WHERE agency_code = %s FOR UPDATE NOWAIT",
                            (AGENCY,))
                seen["counter"] = cur.fetchone()[0]
            other.rollback()
        finally:
            other.close()

    state, created = file(repo, key="k-2", also=probe)
    assert created and seen["counter"] == 1
    assert state.code == format_code(AGENCY, local_date(dt.datetime.now(dt.UTC)), 2)
    assert seen["stand_in"] != state.code and parse_code(seen["stand_in"])[0] == AGENCY
    held = codes_held(repo)
    assert seen["stand_in"] not in repr(held)
    assert state.code in held["documents"] and state.code in held["idempotency_keys"]
    assert f"{stream_id(state.code)}|{state.code}" in held["events"]
    assert seen["stand_in"] not in repr(state)
    assert repo.lookup(state.code)["code"] == state.code
    assert repo.load(state.code).code == state.code
    breaks = [b for b in repo.log.verify() if not isinstance(b, int)]
    assert breaks == []


def test_a_filing_with_a_new_key_is_one_round_trip(repo, monkeypatch):
    file(repo, key="warm-up")  # its statements prepared on the pool's connection
    trips = count_round_trips(monkeypatch)
    state, created = file(repo, key="k-new")
    assert created and trips == ["statement"]  # BEGIN, claim, blob, draw, rows, append, COMMIT
    trips.clear()
    again, created_again = file(repo, key="k-new")  # a retry: refused by the claim, answered by a read
    assert not created_again and again.code == state.code


def test_a_read_before_the_commit_draws_the_code_first(repo):
    """A statement whose answer the transaction waits for (a draft's stream read, say) cannot
    run after the commit: the code is drawn before it, and what follows holds the code."""
    answers = []

    def read_between(tx, code, now):
        cur = tx.cursor
        cur.execute("SELECT last_value FROM code_counters WHERE agency_code = %s", (AGENCY,))
        answers.append((code, cur.fetchone()[0]))

    state, _ = file(repo, also=read_between)
    (stand_in, drawn), = answers
    assert drawn == 1 and state.code == format_code(AGENCY, local_date(dt.datetime.now(dt.UTC)), 1)
    held = codes_held(repo)
    assert stand_in not in repr(held) and held["documents"] == [state.code]
    assert held["events"] == [f"{stream_id(state.code)}|{state.code}"]


def test_the_code_keeps_its_form_past_four_digits_and_a_refusal_gives_the_number_back(repo):
    first, _ = submit(repo)
    day = parse_code(first.code)[1]
    with repo.repository.db.transaction(dict_rows=False) as cur:
        cur.execute("UPDATE code_counters SET last_value = 9998 WHERE agency_code = %s", (AGENCY,))

    def refuse(tx, code, now):
        tx.defer("INSERT INTO documents (id) VALUES (NULL)", ())  # fails inside the commit's round trip

    with pytest.raises(psycopg2.errors.NotNullViolation):
        file(repo, also=refuse)
    codes = [submit(repo)[0].code for _ in range(2)]
    assert codes == [format_code(AGENCY, day, 9999), format_code(AGENCY, day, 10000)]
    assert codes[1].endswith("-10000")
    assert len(codes_held(repo)["dossier_status"]) == 3


def test_a_used_key_leaves_no_number_drawn(repo):
    first, _ = file(repo, key="same")
    again, created = file(repo, key="same")
    other, _ = file(repo, key="another")
    assert not created and again.code == first.code
    assert parse_code(other.code)[2] == parse_code(first.code)[2] + 1


HOSTILE = "O'Brien \\' \\\\ \"; DROP TABLE events; -- $$ $x$ %s %(a)s \n\t E'\\x00' Nguyễn ' || 'x"


def test_hostile_text_goes_through_the_drawn_code_round_trip_verbatim(repo):
    """What the applicant typed travels inside the statements ``run_with_drawn_code`` runs, quoted
    twice: quotes, backslashes, dollar quotes, placeholders and a look-alike code come back as
    sent, and the key stays the owner's."""
    look_alike = f"{AGENCY}-261207-{'1' * 24}"
    name = HOSTILE + " " + look_alike + " " + "x" * 200_000
    state, created = submit(repo, name=name, key=HOSTILE)
    assert created and state.applicant["full_name"] == name
    assert repo.load(state.code).applicant["full_name"] == name
    [event] = repo.log.read_stream(stream_id(state.code))
    assert event.data["applicant"]["full_name"] == name and event.data["code"] == state.code
    again, created_again = submit(repo, name=name, key=HOSTILE)
    assert not created_again and again.code == state.code
    other, _ = submit(repo, owner="acc-2", key=HOSTILE)  # another owner's same key is another filing
    assert other.code != state.code and parse_code(other.code)[2] == parse_code(state.code)[2] + 1
    assert [b for b in repo.log.verify() if not isinstance(b, int)] == []
    with repo.repository.db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT count(*) FROM events")
        assert cur.fetchone()[0] == 2
