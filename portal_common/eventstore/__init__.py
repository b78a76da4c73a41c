"""The append-only event log: the port (port.py), PostgreSQL (store.py, which explains the
ordering guarantee) and in-process (memory.py) implementations."""

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
from portal_common.eventstore.memory import MemoryEventStore, MemoryTransaction
from portal_common.eventstore.port import EventLog
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
    "EventLog",
    "EventSchemaError",
    "EventStore",
    "EventStoreError",
    "MemoryEventStore",
    "MemoryTransaction",
    "NewEvent",
    "RecordedEvent",
    "ddl",
    "event_hash",
    "event_hash_v2",
    "lock_key",
]
