"""Exactly-once effect for event consumers on top of at-least-once delivery.

A handler's effect and the record that it has seen the event commit in one transaction of
the consumer's own database: a redelivered copy finds the record and changes nothing, and a
crash before the commit leaves neither, so the redelivery applies it once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from portal_common.db import Database

T = TypeVar("T")


def claim(cursor: Any, consumer: str, event_id: str) -> bool:
    """Record ``event_id`` for ``consumer`` in the cursor's transaction; False if seen before."""
    cursor.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) "
        "ON CONFLICT DO NOTHING",
        (consumer, str(event_id)),
    )
    return cursor.rowcount == 1


def handle_once(
    db: Database, consumer: str, envelope: dict, apply: Callable[[Any, dict], T]
) -> tuple[bool, T | None]:
    """Run ``apply(cursor, envelope)`` unless this consumer already applied the event.

    Returns ``(True, result)`` when applied now, ``(False, None)`` for a duplicate.
    """
    with db.transaction() as cur:
        if not claim(cur, consumer, envelope["event_id"]):
            return False, None
        return True, apply(cur, envelope)
