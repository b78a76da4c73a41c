"""Fixtures of the event-store tests: an isolated log per test, probe events, a superuser
connection for the tests that play the attacker."""

from __future__ import annotations

import pytest
from psycopg2.extensions import parse_dsn

from portal_common.db import connect
from portal_common.eventstore import EventStore, NewEvent

PROBE = "ServiceProbeRecorded"


def probe(n: int = 0, note: str | None = None, **kw) -> NewEvent:
    """A valid event of the catalogue's probe type."""
    return NewEvent(PROBE, {"note": note if note is not None else f"probe {n}", "sequence": n}, **kw)


def probes(start: int, count: int) -> list[NewEvent]:
    return [probe(start + i) for i in range(count)]


@pytest.fixture
def log(fresh_schema) -> EventStore:
    """A freshly migrated, empty event log in a schema of its own."""
    return EventStore(fresh_schema("es"))


@pytest.fixture
def superuser(log):
    """An autocommit connection as the database superuser, on the log's schema."""
    conn = connect(log.db.dsn, log.schema, application_name="test-superuser")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cur.fetchone()[0]:
            conn.close()
            user = parse_dsn(log.db.dsn).get("user")
            pytest.skip(f"the database user {user} is not a superuser on this machine's PostgreSQL")
    yield conn
    conn.close()


def count_rows(store: EventStore) -> int:
    with store.db.transaction(dict_rows=False) as cur:
        cur.execute(f"SELECT count(*) FROM {store.schema}.events")
        return cur.fetchone()[0]
