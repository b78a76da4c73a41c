"""Read models of the dossier service: the projections of its log and the queries over them.

A projection is ``rows(state) -> list of rows`` for one table keyed by the dossier code (or
draft id), so the same code keeps it up to date inside each command's transaction
(``project``) and rebuilds it from nothing (``rebuild``): the live and the rebuilt tables
cannot drift apart except through a bug, which the property test of rebuild equality would
catch. ``ReadModels`` is the port the application reads through; ``PgReadModels`` answers
from these tables (``memory.MemoryStore`` from rows held in process).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from portal_common.db import Database, Prepared, connect, json_loads
from services.dossier.domain import drafts
from services.dossier.domain.calendar import LOCAL_TZ
from services.dossier.domain.drafts import DraftState
from services.dossier.domain.lifecycle import ACTIVE, FINAL, DossierState, evolve, replay_rows
from services.dossier.repository import PgTransaction, Transaction

# stream type -> (empty state, fold): how the log's streams of that type replay
FOLDS: dict[str, tuple[type, Callable[..., Any]]] = {
    "dossier": (DossierState, evolve),
    "draft": (DraftState, drafts.evolve),
}


@dataclass(frozen=True)
class Projection:
    name: str
    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    rows: Callable[[Any], list[tuple]]
    stream_type: str = "dossier"
    id_column: str = "code"


def _status_rows(s: DossierState) -> list[tuple]:
    return [(s.code, s.status, s.procedure["code"], s.procedure["name"], s.agency_code, s.agency_name,
             s.submitted_at, s.received_at, s.appointment_date, s.overdue, s.paused, s.version,
             s.updated_at)]


def _owner_rows(s: DossierState) -> list[tuple]:
    return [(s.owner["account_id"], s.code, s.status, s.procedure["code"], s.procedure["name"],
             s.agency_code, s.submitted_at, s.appointment_date, s.updated_at)]


def _queue_rows(s: DossierState) -> list[tuple]:
    return [(s.agency_code, s.code, s.status, s.procedure["code"], s.procedure["name"],
             s.submitted_at, s.appointment_date, s.overdue, s.paused, s.updated_at)]


def _overdue_rows(s: DossierState) -> list[tuple]:
    if not (s.overdue and s.status in ACTIVE and s.appointment_date):
        return []
    return [(s.code, s.agency_code, s.appointment_date, s.status, s.updated_at)]


def _draft_rows(s: DraftState) -> list[tuple]:
    return [(s.draft_id, s.owner["account_id"], s.status, s.procedure_code, s.agency_code, s.dossier_code,
             len(s.documents), s.created_at, s.updated_at, s.version)]


PROJECTIONS: dict[str, Projection] = {p.name: p for p in (
    Projection("status", "dossier_status",
               ("code", "status", "procedure_code", "procedure_name", "agency_code", "agency_name",
                "submitted_at", "received_at", "appointment_date", "overdue", "paused", "version",
                "updated_at"), ("code",), _status_rows),
    Projection("owner", "owner_dossiers",
               ("owner_id", "code", "status", "procedure_code", "procedure_name", "agency_code",
                "submitted_at", "appointment_date", "updated_at"), ("owner_id", "code"), _owner_rows),
    Projection("agency_queue", "agency_queue",
               ("agency_code", "code", "status", "procedure_code", "procedure_name", "submitted_at",
                "appointment_date", "overdue", "paused", "updated_at"), ("agency_code", "code"), _queue_rows),
    Projection("overdue", "overdue_dossiers",
               ("code", "agency_code", "appointment_date", "status", "updated_at"), ("code",), _overdue_rows),
    Projection("drafts", "owner_drafts",
               ("draft_id", "owner_id", "status", "procedure_code", "agency_code", "dossier_code", "documents",
                "created_at", "updated_at", "version"), ("draft_id",), _draft_rows,
               stream_type="draft", id_column="draft_id"),
)}


def _stream_type(state: Any) -> str:
    return "draft" if isinstance(state, DraftState) else "dossier"


def project(tx: PgTransaction, state: Any, new: bool = False) -> None:
    """Queue the writes that bring every projection's rows for this dossier (or draft) in line
    with ``state``, in the caller's transaction.

    Upserts rather than delete-and-insert: two commands racing on one dossier then queue on the
    row lock, and the loser's append fails its version check and rolls everything back. A
    ``new`` stream (a code just drawn from its counter) has no rows yet: nothing to delete.
    """
    kind = _stream_type(state)
    state_id = state.draft_id if kind == "draft" else state.code
    for p in (p for p in PROJECTIONS.values() if p.stream_type == kind):
        rows = p.rows(state)
        if not rows:
            if not new:
                tx.defer(Prepared(f"DELETE FROM {p.table} WHERE {p.id_column} = %s"), (state_id,))
            continue
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in p.columns if c not in p.key)
        placeholders = ", ".join(["(" + ", ".join(["%s"] * len(p.columns)) + ")"] * len(rows))
        tx.defer(Prepared(f"INSERT INTO {p.table} ({', '.join(p.columns)}) VALUES {placeholders} "
                          f"ON CONFLICT ({', '.join(p.key)}) DO UPDATE SET {updates}"),
                 [v for row in rows for v in row])
        if len(p.key) > 1 and not new:  # the row may have moved (another agency): drop the old key
            keep = [tuple(row[p.columns.index(k)] for k in p.key) for row in rows]
            tx.defer(f"DELETE FROM {p.table} WHERE {p.id_column} = %s AND ({', '.join(p.key)}) NOT IN %s",
                     (state_id, tuple(keep)))


def _payload(text: str | None) -> Any:
    """An event's payload read as text, decoded as the connection decodes a jsonb value."""
    return None if text is None else json_loads(text)


def _states(cur: Any, batch_size: int, stream_type: str = "dossier") -> Iterator[tuple[Any, int]]:
    """Every stream's final state, streamed in (stream, version) order with a server cursor."""
    if stream_type == "dossier":
        yield from _dossier_states(cur, batch_size)
        return
    empty, fold = FOLDS[stream_type]
    cur.execute(
        "DECLARE rebuild_scan NO SCROLL CURSOR FOR SELECT stream_id, event_type, payload, "
        "occurred_at, metadata -> 'actor' FROM events WHERE stream_type = %s "
        "ORDER BY stream_id, version", (stream_type,))
    current: str | None = None
    state = empty()
    count = 0
    for rows in _fetched(cur, "rebuild_scan", batch_size):
        for stream, event_type, payload, occurred_at, actor in rows:
            if stream != current:
                if current is not None:
                    yield state, count
                current, state, count = stream, empty(), 0
            state = fold(state, event_type, payload, occurred_at, actor, keep_timeline=False)
            count += 1
    if current is not None:
        yield state, count
    cur.execute("CLOSE rebuild_scan")


def _dossier_states(cur: Any, batch_size: int) -> Iterator[tuple[DossierState, int]]:
    """``_states`` of the dossier streams: each stream's rows folded at once by the domain's
    ``replay_rows`` (in place, decoding only the payloads the fold reads: they come as text);
    the actor is not read (the rebuild keeps no timeline)."""
    cur.execute(
        "DECLARE rebuild_scan NO SCROLL CURSOR FOR SELECT stream_id, event_type, payload::text, "
        "occurred_at FROM events WHERE stream_type = 'dossier' ORDER BY stream_id, version")
    current: str | None = None
    events: list[tuple] = []
    for rows in _fetched(cur, "rebuild_scan", batch_size):
        for row in rows:
            if row[0] != current:
                if events:
                    yield replay_rows(events, _payload), len(events)
                current, events = row[0], []
            events.append(row)
    if events:
        yield replay_rows(events, _payload), len(events)
    cur.execute("CLOSE rebuild_scan")


def rebuild(db: Any, names: list[str] | None = None, batch_size: int = 5000,
            progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Drop the named projections' rows and rebuild them from the log in one transaction.

    Readers keep seeing the old rows until the commit. Returns counts of the events and
    streams replayed (``dossiers`` counts dossier streams, ``drafts`` draft streams).

    The log is read on a connection of its own (one read-only transaction, opened after the
    rows are dropped), its next batch fetched while the current one is folded; the rows are
    written by ``COPY`` in the rebuild's transaction from a thread of their own while the scan
    goes on. Both threads spend their time waiting for the server, when they do not hold the
    interpreter: the fold, the server's scan and its inserts overlap.
    """
    chosen = [PROJECTIONS[n] for n in (names or list(PROJECTIONS))]
    counts = {"events": 0, "dossiers": 0, "drafts": 0}
    started = time.monotonic()
    with db.transaction(dict_rows=False) as cur:
        for p in chosen:
            cur.execute(f"DELETE FROM {p.table}")
        reader = connect(db.dsn, db.schema, f"{db.application_name}-scan")
        writer = _Writer(cur)
        try:
            reader.set_session(readonly=True)
            scan = reader.cursor()
            for stream_type in sorted({p.stream_type for p in chosen}):
                of_type = [p for p in chosen if p.stream_type == stream_type]
                streams = "dossiers" if stream_type == "dossier" else "drafts"
                pending: dict[str, list[tuple]] = {p.name: [] for p in of_type}
                with contextlib.closing(_states(scan, batch_size, stream_type)) as states:
                    for state, count in states:
                        counts["events"] += count
                        counts[streams] += 1
                        for p in of_type:
                            pending[p.name].extend(p.rows(state))
                        if counts[streams] % 2000 == 0:
                            _flush(writer, of_type, pending)
                            if progress:
                                progress(counts["events"], counts["dossiers"])
                _flush(writer, of_type, pending)
            writer.close()
        finally:
            writer.stop(discard=True)  # after close(), nothing is left; after an error, skip the rest
            reader.close()
    if progress:
        progress(counts["events"], counts["dossiers"])
    return {**counts, "seconds": round(time.monotonic() - started, 3)}


def _fetched(cur: Any, cursor_name: str, batch_size: int) -> Iterator[list[tuple]]:
    """The batches of a declared server cursor, each next one fetched by a thread while the
    caller works on the one it has (the thread waits for the server without the interpreter)."""
    batches: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                cur.execute(f"FETCH {int(batch_size)} FROM {cursor_name}")
                rows = cur.fetchall()
                batches.put(rows)
                if not rows:
                    return
        except BaseException as exc:  # handed to the caller, which raises it
            batches.put(exc)

    thread = threading.Thread(target=fetch, name=f"rebuild-{cursor_name}", daemon=True)
    thread.start()
    try:
        while True:
            rows = batches.get()
            if isinstance(rows, BaseException):
                raise rows
            if not rows:
                return
            yield rows
    finally:
        stop.set()
        while thread.is_alive():  # let a fetch blocked on the full queue finish
            with contextlib.suppress(queue.Empty):
                batches.get(timeout=0.05)
        thread.join()


class _Writer:
    """The ``COPY`` statements of a rebuild, run in order on its transaction by a thread of their
    own; the first error stops the writing and is raised to the scan (``copy``, ``close``)."""

    def __init__(self, cur: Any):
        self.cur = cur
        self.error: BaseException | None = None
        self.discard = False  # the rebuild failed: what is still queued need not be written
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.thread = threading.Thread(target=self._run, name="rebuild-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None and not self.discard:
                try:
                    self.cur.copy_expert(item[0], io.StringIO(item[1]))
                except BaseException as exc:  # raised to the scan by copy() or close()
                    self.error = exc

    def copy(self, statement: str, text: str) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((statement, text))

    def stop(self, discard: bool = False) -> None:
        """Wait for the statements queued so far, or only the one running with ``discard``
        (and end the thread)."""
        self.discard = self.discard or discard
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def close(self) -> None:
        """``stop``, then raise the first statement's error, if any."""
        self.stop()
        if self.error is not None:
            raise self.error


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, dt.date):  # dates and datetimes
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return str(value).translate(_COPY_ESCAPES)


_SPECIAL = ("\\", "\t", "\n", "\r")
_BOOLEANS = {True: "t", False: "f"}


def _copy_column(values: tuple) -> list[str] | tuple:
    """One column of rows in COPY's text format: ``_copy_value`` of each value, done a column
    at a time where every value has one plain type (no Python call per value)."""
    kinds = set(map(type, values))
    nullable = type(None) in kinds
    kinds.discard(type(None))
    if len(kinds) > 1:
        return list(map(_copy_value, values))
    kind = kinds.pop() if kinds else None
    if kind is None:
        return ["\\N"] * len(values)
    if kind is str:
        present = [v for v in values if v is not None] if nullable else values
        joined = "".join(present)
        if any(c in joined for c in _SPECIAL):
            return list(map(_copy_value, values))
        return [("\\N" if v is None else v) for v in values] if nullable else values
    if kind is int:
        text = str
    elif kind is bool:
        text = _BOOLEANS.__getitem__
    elif kind is dt.date or kind is dt.datetime:
        text = kind.isoformat
    else:
        return list(map(_copy_value, values))
    if nullable:
        return [("\\N" if v is None else text(v)) for v in values]
    return list(map(text, values))


def _copy_text(rows: list[tuple]) -> str:
    """Rows in COPY's text format: the same text as ``_copy_value`` of each value, tab-separated,
    a line per row (rows of one projection, all the same length)."""
    if not rows:
        return ""
    columns = [_copy_column(column) for column in zip(*rows, strict=True)]
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _flush(writer: _Writer, chosen: list[Projection], pending: dict[str, list[tuple]]) -> None:
    """Write the rows gathered so far with COPY (no per-row SQL text to build or parse)."""
    for p in chosen:
        if pending[p.name]:
            writer.copy(f"COPY {p.table} ({', '.join(p.columns)}) FROM STDIN", _copy_text(pending[p.name]))
            pending[p.name] = []


def snapshot(cur: Any, name: str) -> list[tuple]:
    """A projection's rows in a stable order (for comparing live and rebuilt)."""
    p = PROJECTIONS[name]
    cur.execute(f"SELECT {', '.join(p.columns)} FROM {p.table} ORDER BY {', '.join(p.columns[:2])}")
    return cur.fetchall()


# -- the port the application reads through -------------------------------------------------


class ReadModels(Protocol):
    """The projections: kept by the application's transactions, read by its queries."""

    def project(self, tx: Transaction, state: Any, new: bool = False) -> None:
        """Bring the rows of this dossier (or draft) in line with its state, in ``tx``
        (``new``: a stream that has no rows yet)."""

    def lookup(self, code: str) -> dict[str, Any] | None: ...

    def owner_list(self, owner_id: str, status: str | None, page: int, page_size: int, *,
                   procedure_code: str | None = None, submitted_from: dt.date | None = None,
                   submitted_to: dt.date | None = None) -> dict[str, Any]: ...

    def agency_queue(self, agency_code: str, status: str | None, overdue: bool | None, page: int,
                     page_size: int) -> dict[str, Any]: ...

    def overdue_candidates(self, today: dt.date, limit: int = 500) -> list[str]: ...

    def open_drafts(self, tx: Transaction, owner_id: str) -> int: ...

    def owner_drafts(self, owner_id: str, status: str, page: int, page_size: int) -> dict[str, Any]: ...

    def access_page(self, code: str, page: int, page_size: int) -> dict[str, Any]: ...


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), LOCAL_TZ)


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with dates as ISO text (RPC replies are JSON)."""
    return {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in row.items()}


def _status_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"code": row["code"], "status": row["status"],
            "procedure": {"code": row["procedure_code"], "name": row["procedure_name"]},
            "agency": {"code": row["agency_code"], "name": row["agency_name"]},
            **jsonable({"received_at": row["received_at"], "appointment_date": row["appointment_date"]}),
            "overdue": row["overdue"]}


OWNER_COLUMNS = ("code", "status", "procedure_code", "procedure_name", "agency_code", "submitted_at",
                 "appointment_date", "updated_at")
QUEUE_COLUMNS = ("code", "status", "procedure_code", "procedure_name", "submitted_at", "appointment_date",
                 "overdue", "paused", "updated_at")
DRAFT_COLUMNS = ("id", "status", "procedure_code", "agency_code", "dossier_code", "documents", "created_at",
                 "updated_at", "version")
ACCESS_COLUMNS = ("id", "accessed_at", "dossier_code", "actor_kind", "account_id", "agency_code", "access",
                  "document_id", "as_of", "request_id")


class PgReadModels:
    """``ReadModels`` over the projection tables in PostgreSQL."""

    def __init__(self, db: Database):
        self.db = db

    def project(self, tx: PgTransaction, state: Any, new: bool = False) -> None:
        project(tx, state, new)

    def lookup(self, code: str) -> dict[str, Any] | None:
        """The public status of a dossier (no personal data)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT code, status, procedure_code, procedure_name, agency_code, agency_name, "
                        "received_at, appointment_date, overdue FROM dossier_status WHERE code = %s", (code,))
            row = cur.fetchone()
        return None if row is None else _status_view(row)

    def owner_list(self, owner_id: str, status: str | None, page: int, page_size: int, *,
                   procedure_code: str | None = None, submitted_from: dt.date | None = None,
                   submitted_to: dt.date | None = None) -> dict[str, Any]:
        """The owner's dossiers, newest first; the dates are local days, both ends included."""
        where, args = "owner_id = %s", [owner_id]
        if status:
            where += " AND status = %s"
            args.append(status)
        if procedure_code:
            where += " AND procedure_code = %s"
            args.append(procedure_code)
        if submitted_from:
            where += " AND submitted_at >= %s"
            args.append(local_midnight(submitted_from))
        if submitted_to:
            where += " AND submitted_at < %s"
            args.append(local_midnight(submitted_to + dt.timedelta(days=1)))
        return self._page(", ".join(OWNER_COLUMNS), "owner_dossiers", where, args, "submitted_at DESC, code DESC",
                          page, page_size)

    def agency_queue(self, agency_code: str, status: str | None, overdue: bool | None, page: int,
                     page_size: int) -> dict[str, Any]:
        """The dossiers an agency holds, due soonest first; closed ones only when asked by status."""
        where, args = "agency_code = %s", [agency_code]
        if status:
            where += " AND status = %s"
            args.append(status)
        else:
            where += " AND NOT (status = ANY(%s))"
            args.append(sorted(FINAL))
        if overdue is not None:
            where += " AND overdue = %s"
            args.append(overdue)
        return self._page(", ".join(QUEUE_COLUMNS), "agency_queue", where, args,
                          "appointment_date NULLS LAST, submitted_at, code", page, page_size)

    def overdue_candidates(self, today: dt.date, limit: int = 500) -> list[str]:
        """Dossiers past their appointment date that are not yet marked overdue."""
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT code FROM dossier_status WHERE appointment_date < %s AND NOT overdue "
                        "AND NOT paused AND status = ANY(%s) ORDER BY appointment_date LIMIT %s",
                        (today, sorted(ACTIVE), limit))
            return [r[0] for r in cur.fetchall()]

    def open_drafts(self, tx: PgTransaction, owner_id: str) -> int:
        cur = tx.cursor
        cur.execute("SELECT count(*) FROM owner_drafts WHERE owner_id = %s AND status = 'open'", (owner_id,))
        return cur.fetchone()[0]

    def owner_drafts(self, owner_id: str, status: str, page: int, page_size: int) -> dict[str, Any]:
        """The owner's drafts in one status, most recently saved first."""
        return self._page("draft_id::text AS id, status, procedure_code, agency_code, dossier_code, documents, "
                          "created_at, updated_at, version", "owner_drafts", "owner_id = %s AND status = %s",
                          [owner_id, status], "updated_at DESC, draft_id", page, page_size)

    def access_page(self, code: str, page: int, page_size: int) -> dict[str, Any]:
        """A dossier's access log, newest first."""
        return self._page("id, accessed_at, dossier_code, actor_kind, account_id, agency_code, access, "
                          "document_id::text AS document_id, as_of, request_id", "access_log",
                          "dossier_code = %s", [code], "accessed_at DESC, id DESC", page, page_size)

    def _page(self, columns: str, table: str, where: str, args: list, order: str, page: int,
              page_size: int) -> dict[str, Any]:
        """One page of a table's rows with the total count, as the list RPCs answer it.

        ``columns``, ``table``, ``where`` and ``order`` are this module's own SQL text; values go
        in ``args`` only.
        """
        with self.db.transaction() as cur:
            cur.execute(f"SELECT count(*) AS n FROM {table} WHERE {where}", args)
            total = cur.fetchone()["n"]
            cur.execute(f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s",
                        [*args, page_size, (page - 1) * page_size])
            items = [jsonable(r) for r in cur.fetchall()]
        return {"items": items, "total": total, "page": page, "page_size": page_size}
