"""Read models of the dossier log: each one a function of a dossier's replayed state.

A projection is ``rows(state) -> list of rows`` for one table keyed by the dossier code, so
the same code keeps it up to date inside each command's transaction (``apply``) and
rebuilds it from nothing (``rebuild``): the live and the rebuilt tables cannot drift apart
except through a bug, which the property test of rebuild equality would catch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2.extras

from services.dossier.domain import drafts
from services.dossier.domain.drafts import DraftState
from services.dossier.domain.lifecycle import ACTIVE, DossierState, evolve

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


def apply(cur: Any, state: Any, projections: list[Projection] | None = None) -> None:
    """Make every projection's rows for this dossier (or draft) match ``state``, in the caller's
    transaction and in one round trip to the server (see ``statements``)."""
    cur.execute(b";\n".join(statements(cur, state, projections)))


def statements(cur: Any, state: Any, projections: list[Projection] | None = None) -> list[bytes]:
    """The SQL that brings the projections' rows in line with ``state`` (values bound by psycopg2).

    Returned rather than run, so a command can send them with its other writes in one round
    trip: the submit transaction holds its agency's code counter until it commits, and every
    round trip saved there is throughput for that agency. Upserts rather than delete-and-insert:
    two commands racing on one dossier then queue on the row lock, and the loser's append fails
    its version check and rolls everything back.
    """
    kind = _stream_type(state)
    state_id = state.draft_id if kind == "draft" else state.code
    out: list[bytes] = []
    for p in projections or [p for p in PROJECTIONS.values() if p.stream_type == kind]:
        rows = p.rows(state)
        if not rows:
            out.append(cur.mogrify(f"DELETE FROM {p.table} WHERE {p.id_column} = %s", (state_id,)))
            continue
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in p.columns if c not in p.key)
        placeholder = "(" + ", ".join(["%s"] * len(p.columns)) + ")"
        values = b", ".join(cur.mogrify(placeholder, row) for row in rows)
        out.append(f"INSERT INTO {p.table} ({', '.join(p.columns)}) VALUES ".encode() + values
                   + f" ON CONFLICT ({', '.join(p.key)}) DO UPDATE SET {updates}".encode())
        if len(p.key) > 1:  # the row may have moved (another agency): drop the old key
            keep = [tuple(row[p.columns.index(k)] for k in p.key) for row in rows]
            out.append(cur.mogrify(
                f"DELETE FROM {p.table} WHERE {p.id_column} = %s AND ({', '.join(p.key)}) NOT IN %s",
                (state_id, tuple(keep))))
    return out


def _states(cur: Any, batch_size: int, stream_type: str = "dossier") -> Iterator[tuple[Any, int]]:
    """Every stream's final state, streamed in (stream, version) order with a server cursor."""
    empty, fold = FOLDS[stream_type]
    cur.execute(
        "DECLARE rebuild_scan NO SCROLL CURSOR FOR SELECT stream_id, event_type, payload, "
        "occurred_at, metadata -> 'actor' FROM events WHERE stream_type = %s "
        "ORDER BY stream_id, version", (stream_type,))
    current: str | None = None
    state = empty()
    count = 0
    while True:
        cur.execute(f"FETCH {int(batch_size)} FROM rebuild_scan")
        rows = cur.fetchall()
        if not rows:
            break
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


def rebuild(db: Any, names: list[str] | None = None, batch_size: int = 5000,
            progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Drop the named projections' rows and rebuild them from the log in one transaction.

    Readers keep seeing the old rows until the commit. Returns counts of the events and
    streams replayed (``dossiers`` counts dossier streams, ``drafts`` draft streams).
    """
    chosen = [PROJECTIONS[n] for n in (names or list(PROJECTIONS))]
    counts = {"events": 0, "dossiers": 0, "drafts": 0}
    started = time.monotonic()
    with db.transaction(dict_rows=False) as cur:
        for p in chosen:
            cur.execute(f"DELETE FROM {p.table}")
        for stream_type in sorted({p.stream_type for p in chosen}):
            of_type = [p for p in chosen if p.stream_type == stream_type]
            streams = "dossiers" if stream_type == "dossier" else "drafts"
            pending: dict[str, list[tuple]] = {p.name: [] for p in of_type}
            scan = db_cursor(cur)
            for state, count in _states(scan, batch_size, stream_type):
                counts["events"] += count
                counts[streams] += 1
                for p in of_type:
                    pending[p.name].extend(p.rows(state))
                if counts[streams] % 2000 == 0:
                    _flush(cur, of_type, pending)
                    if progress:
                        progress(counts["events"], counts["dossiers"])
            _flush(cur, of_type, pending)
            scan.close()
    if progress:
        progress(counts["events"], counts["dossiers"])
    return {**counts, "seconds": round(time.monotonic() - started, 3)}


def db_cursor(cur: Any) -> Any:
    """A second cursor on the same connection (the scan reads while the first one writes)."""
    return cur.connection.cursor()


def _flush(cur: Any, chosen: list[Projection], pending: dict[str, list[tuple]]) -> None:
    for p in chosen:
        if pending[p.name]:
            psycopg2.extras.execute_values(
                cur, f"INSERT INTO {p.table} ({', '.join(p.columns)}) VALUES %s", pending[p.name],
                page_size=1000)
            pending[p.name] = []


def snapshot(cur: Any, name: str) -> list[tuple]:
    """A projection's rows in a stable order (for comparing live and rebuilt)."""
    p = PROJECTIONS[name]
    cur.execute(f"SELECT {', '.join(p.columns)} FROM {p.table} ORDER BY {', '.join(p.columns[:2])}")
    return cur.fetchall()

