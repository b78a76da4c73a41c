"""The event-log port: what an application layer needs from its service's log.

Two implementations keep the same guarantees: ``EventStore`` (PostgreSQL, store.py) and
``MemoryEventStore`` (in-process, memory.py). Both

- check ``expected_version`` on every append and raise ``ConcurrencyError`` (with the stream's
  actual version) when the stream moved on, writing nothing;
- write all the events of one append or none of them, at consecutive stream versions;
- give every event a global ``position`` that increases in commit order;
- refuse an event that does not match its published contract (``EventSchemaError``) or whose id
  is already recorded (``DuplicateEventError``);
- record each event's metadata from its ``EventContext`` in the same envelope shape.

``cursor`` is the handle of a transaction the caller opened (``transaction()`` of the
implementation, or for PostgreSQL any cursor of the service's database): appends made with it
become visible together when that transaction commits, and vanish if it rolls back. Without a
cursor an append commits on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from portal_common.eventstore.events import AppendResult, EventContext, NewEvent, RecordedEvent


@runtime_checkable
class EventLog(Protocol):
    """Append to and read from one service's event log.

    Both implementations subclass it and inherit what is the same in each: ``append``'s
    checks and defaults, and ``iter_all`` over ``read_all``.
    """

    def append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        *,
        stream_type: str | None = None,
        context: EventContext | None = None,
        cursor: Any = None,
    ) -> AppendResult:
        """Append ``events`` to a stream atomically at ``expected_version`` (0: a new stream;
        None: no check), or raise and write nothing. The stream type defaults to the stream
        id's prefix (``dossier`` for ``dossier-…``)."""
        if not events:
            raise ValueError("append needs at least one event")
        return self._write(stream_id, stream_type or stream_id.split("-", 1)[0], expected_version, events,
                           context or EventContext(), cursor)

    def _write(self, stream_id: str, stream_type: str, expected_version: int | None, events: Sequence[NewEvent],
               context: EventContext, cursor: Any) -> AppendResult:
        """What ``append`` does in each implementation, its arguments checked and defaulted."""
        ...

    def read_stream(
        self,
        stream_id: str,
        *,
        to_version: int | None = None,
        as_of: dt.datetime | None = None,
        cursor: Any = None,
    ) -> list[RecordedEvent]:
        """A stream's events in version order, up to a version and/or a recorded time."""
        ...

    def stream_version(self, stream_id: str, cursor: Any = None) -> int:
        """The stream's current version (0 when it does not exist)."""
        ...

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` committed events after ``after_position``, in position order."""
        ...

    def iter_all(self, after_position: int = 0, batch_size: int = 5000) -> Iterator[RecordedEvent]:
        """Every committed event after a position, in position order, read in batches (for
        rebuilds and replays)."""
        position = after_position
        while batch := self.read_all(position, batch_size):
            yield from batch
            position = batch[-1].position

    def head_position(self) -> int:
        """The highest committed position (0 for an empty log)."""
        ...
