"""An event log in process memory, with the guarantees of the PostgreSQL store (see port.py).

For tests and tools that need no database: the application layer of a service runs on it
unchanged. Events are checked against the catalogue and round-tripped through JSON like the
PostgreSQL store does, so what comes back has the same shape (payload, metadata, envelope).

Transactions (``transaction()``) run one at a time: one holds a re-entrant lock from its start
to its end, stages its appends, and publishes them at commit in one step, after checking again
that every stream is still at the version each append expected; an exception inside the block
discards them. Positions are drawn when the events are published, so they grow in commit order
and a reader following the log cannot pass over an event that commits later. (The positions an
append inside a transaction reports are the ones it will get if nothing else commits first.)
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portal_common.eventstore.errors import ConcurrencyError, DuplicateEventError, EventSchemaError
from portal_common.eventstore.events import AppendResult, EventContext, NewEvent, RecordedEvent, utcnow
from portal_common.eventstore.port import EventLog

if TYPE_CHECKING:
    from portal_common.contracts import Catalogue


@dataclass
class _Pending:
    stream_id: str
    stream_type: str
    expected_version: int | None
    rows: list[dict[str, Any]]


@dataclass
class MemoryTransaction:
    """The appends a transaction staged; pass it as ``cursor``."""

    store: MemoryEventStore
    pending: list[_Pending] = field(default_factory=list)

    def staged_version(self, stream_id: str) -> int:
        return self.store._version(stream_id) + len(self.staged(stream_id))

    def staged(self, stream_id: str) -> list[RecordedEvent]:
        """This transaction's own appends to a stream, as they will be recorded if it commits."""
        out: list[RecordedEvent] = []
        position, version = self.store.head_position(), self.store._version(stream_id)
        for p in self.pending:
            for row in p.rows:
                position += 1
                if p.stream_id == stream_id:
                    version += 1
                    out.append(RecordedEvent(position=position, stream_id=p.stream_id, stream_type=p.stream_type,
                                             version=version, recorded_at=utcnow(), **row))
        return out


class MemoryEventStore(EventLog):
    """Append to and read from a log held in this process."""

    def __init__(self, catalogue: Catalogue | None = None):
        if catalogue is None:
            from portal_common.contracts import CATALOGUE as catalogue
        self.catalogue = catalogue
        self._events: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._event_ids: set[str] = set()
        self.lock = threading.RLock()

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        """A unit of work: appends made with it commit together at the end, or not at all."""
        with self.lock:
            tx = MemoryTransaction(self)
            yield tx
            self._commit(tx.pending)

    def _commit(self, pending: list[_Pending]) -> list[AppendResult]:
        versions: dict[str, int] = {}
        ids: set[str] = set()
        for p in pending:  # check everything before publishing anything
            current = versions.get(p.stream_id, self._version(p.stream_id))
            if p.expected_version is not None and p.expected_version != current:
                raise ConcurrencyError(p.stream_id, p.expected_version, current)
            for row in p.rows:
                if row["event_id"] in self._event_ids or row["event_id"] in ids:
                    raise DuplicateEventError(p.stream_id, row["event_id"])
                ids.add(row["event_id"])
            versions[p.stream_id] = current + len(p.rows)
        results = []
        for p in pending:
            stream = self._streams.setdefault(p.stream_id, [])
            first = len(self._events) + 1
            for row in p.rows:
                event = RecordedEvent(
                    position=len(self._events) + 1, stream_id=p.stream_id, stream_type=p.stream_type,
                    version=len(stream) + 1, recorded_at=utcnow(), **row)
                self._events.append(event)
                stream.append(event)
                self._event_ids.add(row["event_id"])
            results.append(AppendResult(p.stream_id, first, len(self._events), len(stream)))
        return results

    # -- writing ------------------------------------------------------------------------

    def _encode(self, events: Sequence[NewEvent], context: EventContext) -> list[dict[str, Any]]:
        metadata = context.metadata()
        rows = []
        for event in events:
            version = self.catalogue.validate(event.event_type, event.schema_version, event.data)
            try:
                text = json.dumps([event.data, event.metadata(metadata)], ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise EventSchemaError(event.event_type, None, f"not JSON: {exc}") from None
            if "\u0000" in text or "\\u0000" in text.replace("\\\\", ""):
                raise EventSchemaError(event.event_type, None, "text contains a NUL character (U+0000)")
            data, meta = json.loads(text)
            rows.append({"event_id": event.event_id, "event_type": event.event_type, "schema_version": version,
                         "data": data, "metadata": meta, "occurred_at": event.occurred_at})
        return rows

    def _write(self, stream_id: str, stream_type: str, expected_version: int | None, events: Sequence[NewEvent],
               context: EventContext, cursor: MemoryTransaction | None) -> AppendResult:
        rows = self._encode(events, context)
        pending = _Pending(stream_id, stream_type, expected_version, rows)
        with self.lock:
            if cursor is None:
                return self._commit([pending])[0]
            current = cursor.staged_version(stream_id)
            if expected_version is not None and expected_version != current:
                raise ConcurrencyError(stream_id, expected_version, current)
            cursor.pending.append(pending)
            head = len(self._events) + sum(len(p.rows) for p in cursor.pending)
            return AppendResult(stream_id, head - len(rows) + 1, head, current + len(rows))

    # -- reading ------------------------------------------------------------------------

    def _version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    def read_stream(
        self,
        stream_id: str,
        *,
        to_version: int | None = None,
        as_of: dt.datetime | None = None,
        cursor: MemoryTransaction | None = None,
    ) -> list[RecordedEvent]:
        """A stream's events in version order, up to a version and/or a recorded time (within a
        transaction: with that transaction's own appends, as PostgreSQL reads them)."""
        with self.lock:
            events = list(self._streams.get(stream_id, ()))
            if cursor is not None:
                events += cursor.staged(stream_id)
        if to_version is not None:
            events = [e for e in events if e.version <= to_version]
        if as_of is not None:
            events = [e for e in events if e.recorded_at <= as_of]
        return events

    def stream_version(self, stream_id: str, cursor: MemoryTransaction | None = None) -> int:
        """The stream's current version (0 when it does not exist)."""
        with self.lock:
            return cursor.staged_version(stream_id) if cursor is not None else self._version(stream_id)

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` events with a position above ``after_position``, in order."""
        with self.lock:
            return self._events[max(after_position, 0):max(after_position, 0) + limit]

    def head_position(self) -> int:
        """The highest committed position (0 for an empty log)."""
        with self.lock:
            return len(self._events)


__all__ = ["MemoryEventStore", "MemoryTransaction"]
