"""The append-only event log of one service, in PostgreSQL.

Following the log without gaps
------------------------------
Positions come from a sequence, and sequences hand out numbers when a transaction asks, not
when it commits: with plain inserts, transaction A could take position 10, transaction B
position 11, B commit first, and a reader that has read 11 would never look back for 10.

``append_events`` (schema.sql) therefore takes one transaction-scoped advisory lock of this
log before it draws positions, and PostgreSQL releases that lock only after the commit is
visible to every new snapshot (at commit it leaves the proc array, which is what snapshots
read, before it releases its locks). So the transaction holding position *n* has committed (or
aborted) before any transaction can draw *n + 1*: positions become visible in order, a gap
can only be a rolled-back append that will never appear, and a reader that asks for
``position > last_seen`` cannot pass over an event that commits later. The cost is that
appends to one log commit one at a time; the lock is taken inside the append, so it is held
only from the append to the commit. Command handlers should append as their last write.
Concurrent writers of one log therefore do not share WAL flushes (no group commit): a log
takes about one append per commit flush (``python -m bench store`` shows it as
``append_1x4``). Each service has its own log and lock, but the ``pg_notify`` that wakes
the outbox relay also orders the commits of notifying transactions across the PostgreSQL
cluster, so logs in one cluster share that limit; dropping the notify (the relay then polls
every ``OUTBOX_IDLE_WAIT``) would lift it at the price of publishing latency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extras

from portal_common.db import Database, Prepared
from portal_common.eventstore.errors import (
    AppendOnlyViolation,
    ConcurrencyError,
    DuplicateEventError,
    EventSchemaError,
)
from portal_common.eventstore.events import (
    AppendResult,
    EventContext,
    NewEvent,
    RecordedEvent,
)
from portal_common.eventstore.port import EventLog
from portal_common.prepared import statement_bytes

if TYPE_CHECKING:
    from portal_common.contracts import Catalogue

GENESIS_HASH = bytes(32)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = "\x1f"
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash + "u0000"
_COLUMNS = (
    "position, stream_id, stream_type, version, event_id, event_type, schema_version, "
    "payload, metadata, occurred_at, recorded_at"
)


def lock_key(schema: str) -> int:
    """The advisory-lock key that serialises the commits of one log."""
    return zlib.crc32(f"{schema}.events".encode()) - 2**31


def ddl(schema: str) -> str:
    """The SQL that creates (or brings up to date) the event log in ``schema``."""
    if not schema.isidentifier() or schema.lower() != schema:
        raise ValueError(f"schema name must be a lower-case identifier: {schema!r}")
    template = resources.files("portal_common.eventstore").joinpath("schema.sql").read_text()
    return template.format(schema=schema, lock_key=lock_key(schema))


def event_hash(
    prev: bytes,
    stream_id: str,
    version: int,
    event_id: uuid.UUID | str,
    event_type: str,
    schema_version: int,
    occurred_at: dt.datetime,
    payload_text: str,
    metadata_text: str,
) -> bytes:
    """Recompute a version-1 chain hash (``event_hash`` in schema.sql; rows of older logs)."""
    text = _US.join(
        [stream_id, str(version), str(event_id), event_type, str(schema_version), str(_micros(occurred_at)),
         payload_text, metadata_text]
    )
    return hashlib.sha256(prev + text.encode("utf-8")).digest()


def event_hash_v2(
    prev: bytes,
    position: int,
    stream_id: str,
    stream_type: str,
    version: int,
    event_id: uuid.UUID | str,
    event_type: str,
    schema_version: int,
    occurred_at: dt.datetime,
    recorded_at: dt.datetime,
    payload_text: str,
    metadata_text: str,
) -> bytes:
    """Recompute a version-2 chain hash (``event_hash_v2`` in schema.sql): also covers the
    event's global position, stream type and recorded-at time."""
    text = _US.join(
        ["v2", str(position), stream_id, stream_type, str(version), str(event_id), event_type,
         str(schema_version), str(_micros(occurred_at)), str(_micros(recorded_at)), payload_text,
         metadata_text]
    )
    return hashlib.sha256(prev + text.encode("utf-8")).digest()


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class ChainBreak:
    """An event whose stored hashes do not match what its content and predecessor give."""

    stream_id: str
    version: int
    position: int
    reason: str


def _row_to_event(row: Sequence[Any]) -> RecordedEvent:
    # _COLUMNS lists the columns in RecordedEvent's field order: positional is the cheap way.
    return RecordedEvent(*row)


def read_after(cursor: Any, schema: str, after_position: int, limit: int,
               first: tuple[str, Sequence[Any]] | None = None) -> list[RecordedEvent]:
    """Up to ``limit`` events of ``schema``'s log above ``after_position``, in order, read on a
    cursor the caller holds (a plain, not a dict, cursor): for the outbox relay's connection.

    ``first``, a statement and its parameters, is sent in the same round trip ahead of the
    read (the relay's checkpoint); on a connection in autocommit both commit together."""
    read = statement_bytes(
        cursor, Prepared(f"SELECT {_COLUMNS} FROM {schema}.events WHERE position > %s ORDER BY position LIMIT %s"),
        (after_position, limit),
    )
    cursor.execute(read if first is None else statement_bytes(cursor, *first) + b";" + read)
    return [_row_to_event(r) for r in cursor.fetchall()]


class EventStore(EventLog):
    """Append to and read from the log in one service's schema."""

    def __init__(self, db: Database, schema: str | None = None, catalogue: Catalogue | None = None):
        if catalogue is None:
            from portal_common.contracts import CATALOGUE as catalogue
        self.db = db
        self.schema = schema or db.schema
        self.catalogue = catalogue
        self._table = f"{self.schema}.events"

    # -- writing -----------------------------------------------------------------------

    def encode(self, events: Sequence[NewEvent], context: EventContext) -> str:
        """The events as ``append_events`` takes them (a JSON array), validated against the
        catalogue: for a service's own SQL that appends with the log's function."""
        metadata = context.metadata()
        encoded = []
        for event in events:
            version = self.catalogue.validate(event.event_type, event.schema_version, event.data)
            encoded.append({
                "event_id": str(event.event_id),
                "event_type": event.event_type,
                "schema_version": version,
                "occurred_at": event.occurred_at.isoformat(),
                "payload": event.data,
                "metadata": event.metadata(metadata),
            })
        try:
            text = json.dumps(encoded, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EventSchemaError(events[0].event_type, None, f"not JSON: {exc}") from None
        if "\\u0000" in text and _NUL_ESCAPE.search(text):
            # jsonb cannot hold U+0000; refuse it here as bad data rather than as a server error.
            raise EventSchemaError(events[0].event_type, None, "text contains a NUL character (U+0000)")
        return text

    def _write(self, stream_id: str, stream_type: str, expected_version: int | None, events: Sequence[NewEvent],
               context: EventContext, cursor: Any) -> AppendResult:
        # Pass ``cursor`` to append inside a transaction of your own (the caller commits);
        # otherwise the append commits on its own.
        payload = self.encode(events, context)
        if cursor is not None:
            return self._append(cursor, stream_id, stream_type, expected_version, payload, len(events))
        # On its own, the append is one statement (append_events does the whole job), so it
        # runs in autocommit: PostgreSQL wraps it in an implicit transaction that commits or
        # rolls back as a whole, and the BEGIN and COMMIT round trips are saved.
        with self.db.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    return self._append(cur, stream_id, stream_type, expected_version, payload, len(events))
            finally:
                if not conn.closed:
                    conn.autocommit = False

    def _append(self, cur, stream_id, stream_type, expected_version, payload, count: int = 1) -> AppendResult:
        try:
            cur.execute(
                Prepared(f"SELECT out_position, out_version FROM {self.schema}.append_events(%s, %s, %s, %s)"),
                (stream_id, stream_type, expected_version, payload),
            )
        except psycopg2.Error as exc:
            if exc.pgcode == "EV409":
                actual = int(exc.diag.message_detail) if exc.diag.message_detail else None
                raise ConcurrencyError(stream_id, expected_version, actual) from None
            if exc.pgcode == "23505" and exc.diag.table_name in (None, "events"):
                # (a write the caller queued ahead of the append, in its round trip, is not the log's)
                if exc.diag.constraint_name == "events_event_id_key":
                    detail = exc.diag.message_detail or ""
                    event_id = detail.split("=(", 1)[1].split(")", 1)[0] if "=(" in detail else None
                    raise DuplicateEventError(stream_id, event_id) from None
                raise ConcurrencyError(stream_id, expected_version, None) from None
            raise
        if cur.description is None:
            # sent with its transaction's COMMIT in one round trip, whose last result is the
            # commit's: where the events went is not returned (0), their version is known
            return AppendResult(stream_id, 0, 0, (expected_version or 0) + count)
        rows = cur.fetchall()
        return AppendResult(stream_id, rows[0][0], rows[-1][0], rows[-1][1])

    # -- reading -----------------------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        *,
        to_version: int | None = None,
        as_of: dt.datetime | None = None,
        cursor: Any = None,
    ) -> list[RecordedEvent]:
        """A stream's events in version order, up to a version and/or a recorded time."""
        sql = f"SELECT {_COLUMNS} FROM {self._table} WHERE stream_id = %s"
        args: list[Any] = [stream_id]
        if to_version is not None:
            sql += " AND version <= %s"
            args.append(to_version)
        if as_of is not None:
            sql += " AND recorded_at <= %s"
            args.append(as_of)
        sql += " ORDER BY version"
        if cursor is not None:
            cursor.execute(sql, args)
            return [RecordedEvent(*r) for r in cursor.fetchall()]
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute(sql, args)
            return [RecordedEvent(*r) for r in cur.fetchall()]

    def stream_version(self, stream_id: str, cursor: Any = None) -> int:
        """The stream's current version (0 when it does not exist)."""
        sql = f"SELECT coalesce(max(version), 0) FROM {self._table} WHERE stream_id = %s"
        if cursor is not None:
            cursor.execute(sql, (stream_id,))
            return cursor.fetchone()[0]
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute(sql, (stream_id,))
            return cur.fetchone()[0]

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` events with a position above ``after_position``, in order.

        Safe to use for following: see the module docstring for why no event can be passed.
        """
        with self.db.transaction(dict_rows=False) as cur:
            return read_after(cur, self.schema, after_position, limit)

    def head_position(self) -> int:
        """The highest committed position (0 for an empty log)."""
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute(f"SELECT coalesce(max(position), 0) FROM {self._table}")
            return cur.fetchone()[0]

    # -- integrity ---------------------------------------------------------------------

    def verify(self, stream_id: str | None = None, batch_size: int = 5000) -> Iterator[ChainBreak | int]:
        """Walk the log (or one stream), recomputing every hash from the rows' content.

        Yields each checked position (for progress) and a ``ChainBreak`` for every event whose
        content, predecessor link or version sequence does not match. Rows of hash version 2
        (every append since it exists) also cover their position, stream type and recorded-at
        time; version-1 rows (older logs) cover the rest of the row.
        """
        last: dict[str, tuple[int, bytes]] = {}
        position = 0
        where = "AND stream_id = %s" if stream_id else ""
        while True:
            with self.db.transaction(dict_rows=False) as cur:
                args: list[Any] = [position]
                if stream_id:
                    args.append(stream_id)
                args.append(batch_size)
                cur.execute(
                    f"SELECT position, stream_id, stream_type, version, event_id, event_type, schema_version, "
                    f"occurred_at, recorded_at, payload::text, metadata::text, prev_hash, hash, hash_version "
                    f"FROM {self._table} WHERE position > %s {where} ORDER BY position LIMIT %s",
                    args,
                )
                rows = cur.fetchall()
            if not rows:
                return
            for (pos, sid, stype, version, event_id, etype, sversion, occurred, recorded, ptext, mtext,
                 prev_hash, stored, hash_version) in rows:
                prev_version, expected_prev = last.get(sid, (0, GENESIS_HASH))
                if version != prev_version + 1:
                    yield ChainBreak(sid, version, pos, f"version {version} follows {prev_version}")
                if bytes(prev_hash) != expected_prev:
                    yield ChainBreak(sid, version, pos, "link to the previous event is broken")
                if hash_version == 2:
                    computed = event_hash_v2(bytes(prev_hash), pos, sid, stype, version, event_id, etype,
                                             sversion, occurred, recorded, ptext, mtext)
                elif hash_version == 1:
                    computed = event_hash(bytes(prev_hash), sid, version, event_id, etype, sversion,
                                          occurred, ptext, mtext)
                else:
                    computed = None
                if computed != bytes(stored):
                    yield ChainBreak(sid, version, pos, "content does not match its hash")
                last[sid] = (version, bytes(stored))
                yield pos
            position = rows[-1][0]


def is_append_only_violation(exc: BaseException) -> bool:
    """True when PostgreSQL refused a change to the log (trigger ``events_append_only``)."""
    return isinstance(exc, psycopg2.Error) and exc.pgcode == "EV403"


__all__ = [
    "GENESIS_HASH",
    "AppendOnlyViolation",
    "ChainBreak",
    "EventStore",
    "ddl",
    "event_hash",
    "event_hash_v2",
    "is_append_only_violation",
    "lock_key",
]
