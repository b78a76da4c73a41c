"""Counting a code path's round trips to PostgreSQL in-process: every statement sent through a
pooled connection (``_MergedBegin.execute``, a batch of statements being one) and every
``COMMIT`` sent on its own. Prepared statements are sent as one ``EXECUTE`` once their
connection has prepared them, so warm the path up before counting."""

from __future__ import annotations

import pytest

from portal_common import db as db_module


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch the pool's connections to note each round trip (``"statement"`` or ``"commit"``)
    in the list returned; clear it before the path to count."""
    trips: list[str] = []
    execute, commit = db_module._MergedBegin.execute, db_module.MergedBeginConnection.commit

    def counted_execute(cur, query, args=None):
        trips.append("statement")
        return execute(cur, query, args)

    def counted_commit(conn):
        if conn.info.transaction_status != db_module._IDLE:
            trips.append("commit")
        return commit(conn)

    monkeypatch.setattr(db_module._MergedBegin, "execute", counted_execute)
    monkeypatch.setattr(db_module.MergedBeginConnection, "commit", counted_commit)
    return trips
