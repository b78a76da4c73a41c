"""Exactly-once effect for event consumers on top of at-least-once delivery.

A handler's effect and the record that it has seen the event commit in one transaction of
the consumer's own database: a redelivered copy finds the record and changes nothing, and a
crash before the commit leaves neither, so the redelivery applies it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from portal_common.db import Database, Prepared

T = TypeVar("T")


def event_id_of(envelope: Any) -> str:
    """The envelope's event id as a canonical UUID string; ``ValueError`` when there is none.

    Checked before any SQL so that a malformed message is refused as bad input (to be
    dead-lettered by the caller), not turned into a database error.
    """
    raw = envelope.get("event_id") if isinstance(envelope, dict) else None
    if not raw:
        raise ValueError("message has no event_id")
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        raise ValueError(f"message has no valid event_id: {str(raw)[:60]!r}") from None


def claim(cursor: Any, consumer: str, event_id: str) -> bool:
    """Record ``event_id`` for ``consumer`` in the cursor's transaction; False if seen before."""
    event_id = event_id_of({"event_id": event_id})
    cursor.execute(
        Prepared("INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"),
        (consumer, str(event_id)),
    )
    return cursor.rowcount == 1


def claim_many(cursor: Any, consumer: str, event_ids: list[str]) -> set[str]:
    """``claim`` for several events in one statement; the ids (canonical) not seen before."""
    ids = [event_id_of({"event_id": e}) for e in event_ids]
    if not ids:
        return set()
    cursor.execute(
        Prepared("INSERT INTO processed_events (consumer, event_id) SELECT %s, e FROM unnest(%s::uuid[]) AS e "
                 "ON CONFLICT DO NOTHING RETURNING event_id"),
        (consumer, ids),
    )
    return {str(r["event_id"] if isinstance(r, dict) else r[0]) for r in cursor.fetchall()}


def release_many(cursor: Any, consumer: str, event_ids: list[str]) -> None:
    """Undo ``claim_many`` for these events in the cursor's transaction (a batch that leaves
    them to be handled on their own, later)."""
    if event_ids:
        cursor.execute(Prepared("DELETE FROM processed_events WHERE consumer = %s AND event_id = ANY(%s::uuid[])"),
                       (consumer, [event_id_of({"event_id": e}) for e in event_ids]))


def handle_once(
    db: Database, consumer: str, envelope: dict, apply: Callable[[Any, dict], T]
) -> tuple[bool, T | None]:
    """Run ``apply(cursor, envelope)`` unless this consumer already applied the event.

    Returns ``(True, result)`` when applied now, ``(False, None)`` for a duplicate.
    """
    event_id = event_id_of(envelope)
    with db.transaction() as cur:
        if not claim(cur, consumer, event_id):
            return False, None
        return True, apply(cur, envelope)
