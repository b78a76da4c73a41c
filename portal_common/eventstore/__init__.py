"""The append-only event store: see store.py for the ordering guarantee."""

from portal_common.eventstore.errors import (
    AppendOnlyViolation,
    ConcurrencyError,
    DuplicateEventError,
    EventSchemaError,
    EventStoreError,
)
from portal_common.eventstore.events import (
    SYSTEM,
    Actor,
    AppendResult,
    EventContext,
    NewEvent,
    RecordedEvent,
)
from portal_common.eventstore.store import ChainBreak, EventStore, ddl, event_hash, event_hash_v2, lock_key

__all__ = [
    "SYSTEM",
    "Actor",
    "AppendOnlyViolation",
    "AppendResult",
    "ChainBreak",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventContext",
    "EventSchemaError",
    "EventStore",
    "EventStoreError",
    "NewEvent",
    "RecordedEvent",
    "ddl",
    "event_hash",
    "event_hash_v2",
    "lock_key",
]
