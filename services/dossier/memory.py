"""The dossier service's storage in process memory: ``Repository`` and ``ReadModels`` beside a
``MemoryEventStore``, for running the application with no database (its tests do).

One lock serialises the transactions (the log's), and a transaction that raises puts every
table back as it found it, so what the application sees matches PostgreSQL's transactions:
the code counter has no gaps, an idempotency key and its dossier appear together, a refused
command leaves nothing behind. The read models are the projections' own rows
(``queries.PROJECTIONS``), filtered and ordered in Python as the SQL of ``PgReadModels`` does.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from portal_common.eventstore import MemoryEventStore, MemoryTransaction
from portal_common.eventstore.events import utcnow
from services.dossier.domain.codes import format_code
from services.dossier.domain.documents import Upload
from services.dossier.domain.drafts import DraftState
from services.dossier.domain.lifecycle import ACTIVE, FINAL
from services.dossier.queries import (
    ACCESS_COLUMNS,
    DRAFT_COLUMNS,
    OWNER_COLUMNS,
    PROJECTIONS,
    QUEUE_COLUMNS,
    jsonable,
    local_midnight,
)
from services.dossier.repository import KeyUsed, document_ref


@dataclass
class MemoryTx:
    """A transaction of ``MemoryStore``; ``cursor`` is the log's transaction."""

    cursor: MemoryTransaction
    code: str | None = None


def _moment(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


class MemoryStore:
    """``Repository`` and ``ReadModels`` of the dossier service, held in this process."""

    def __init__(self, log: MemoryEventStore):
        self.log = log
        self.tables: dict[str, dict[Any, Any]] = {name: {} for name in (
            "blobs", "documents", "idempotency_keys", "code_counters", "access_log",
            *(p.table for p in PROJECTIONS.values()))}
        self._access_ids = itertools.count(1)

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[MemoryTx]:
        with self.log.lock:
            saved = {name: dict(rows) for name, rows in self.tables.items()}
            try:
                with self.log.transaction() as tx:
                    yield MemoryTx(tx)
            except BaseException:
                self.tables = saved
                raise

    def reading(self) -> AbstractContextManager[MemoryTx]:
        """A transaction: here nothing is saved by doing without one."""
        return self.transaction()

    def lock(self, tx: MemoryTx, key: str) -> None:
        """Nothing to do: transactions already run one at a time."""

    def commit_with_next(self, tx: MemoryTx) -> None:
        """Nothing to do: no round trips to save."""

    # -- Repository -----------------------------------------------------------------------

    def store_blob(self, tx: MemoryTx, upload: Upload) -> None:
        self.tables["blobs"].setdefault(upload.sha256, upload.content)

    def blob(self, tx: MemoryTx, sha256: str) -> bytes | None:
        return self.tables["blobs"].get(sha256)

    def add_document(self, tx: MemoryTx, upload: Upload, owner_id: str, code: str | None, kind: str,
                     draft_id: str | None = None, doc_id: str | None = None) -> dict[str, Any]:
        ref = document_ref(doc_id or str(uuid.uuid4()), upload)
        self.tables["documents"][ref["id"]] = {**ref, "dossier_code": code, "draft_id": draft_id,
                                               "owner_id": owner_id, "kind": kind}
        return ref

    def staged_document(self, tx: MemoryTx, code: str, doc_id: str) -> dict[str, Any] | None:
        row = self.tables["documents"].get(doc_id)
        if row is None or row["dossier_code"] != code or row["kind"] != "input":
            return None
        return {k: row[k] for k in ("id", "requirement", "name", "content_type", "size", "sha256")}

    def count_documents(self, tx: MemoryTx, code: str) -> int:
        return sum(1 for row in self.tables["documents"].values() if row["dossier_code"] == code)

    def claim_key(self, tx: MemoryTx, owner_id: str, key: str, request_hash: str) -> None:
        if (owner_id, key) in self.tables["idempotency_keys"]:
            raise KeyUsed()
        self.tables["idempotency_keys"][owner_id, key] = (request_hash, None)

    def key_record(self, tx: MemoryTx, owner_id: str, key: str) -> tuple[str, str | None] | None:
        return self.tables["idempotency_keys"].get((owner_id, key))

    def bind_key(self, tx: MemoryTx, owner_id: str, key: str, code: str) -> None:
        request_hash, _ = self.tables["idempotency_keys"][owner_id, key]
        self.tables["idempotency_keys"][owner_id, key] = (request_hash, code)

    def code_at_commit(self, tx: MemoryTx, agency_code: str, day: dt.date) -> str:
        """The code itself: drawn at once, as nothing waits on the counter here."""
        counters = self.tables["code_counters"]
        counters[agency_code, day] = counters.get((agency_code, day), 0) + 1
        tx.code = format_code(agency_code, day, counters[agency_code, day])
        return tx.code

    def drawn_code(self, tx: MemoryTx) -> str:
        if tx.code is None:
            raise RuntimeError("no code drawn in this transaction")
        return tx.code

    def record_access(self, row: dict[str, Any]) -> None:
        with self.transaction():
            entry_id = next(self._access_ids)
            self.tables["access_log"][entry_id] = {**row, "id": entry_id, "accessed_at": utcnow()}

    # -- ReadModels -----------------------------------------------------------------------

    def project(self, tx: MemoryTx, state: Any, new: bool = False) -> None:
        kind = "draft" if isinstance(state, DraftState) else "dossier"
        state_id = state.draft_id if kind == "draft" else state.code
        for p in (p for p in PROJECTIONS.values() if p.stream_type == kind):
            table = self.tables[p.table]
            for key in [k for k, row in table.items() if row[p.id_column] == state_id]:
                del table[key]
            for values in p.rows(state):
                row = dict(zip(p.columns, values, strict=True))
                table[tuple(row[k] for k in p.key)] = row

    def lookup(self, code: str) -> dict[str, Any] | None:
        row = self.tables["dossier_status"].get((code,))
        if row is None:
            return None
        return {"code": row["code"], "status": row["status"],
                "procedure": {"code": row["procedure_code"], "name": row["procedure_name"]},
                "agency": {"code": row["agency_code"], "name": row["agency_name"]},
                **jsonable({"received_at": _moment(row["received_at"]),
                            "appointment_date": row["appointment_date"]}),
                "overdue": row["overdue"]}

    def owner_list(self, owner_id: str, status: str | None, page: int, page_size: int, *,
                   procedure_code: str | None = None, submitted_from: dt.date | None = None,
                   submitted_to: dt.date | None = None) -> dict[str, Any]:
        low = local_midnight(submitted_from) if submitted_from else None
        high = local_midnight(submitted_to + dt.timedelta(days=1)) if submitted_to else None
        rows = [r for r in self.tables["owner_dossiers"].values()
                if r["owner_id"] == owner_id and (not status or r["status"] == status)
                and (not procedure_code or r["procedure_code"] == procedure_code)
                and (low is None or _moment(r["submitted_at"]) >= low)
                and (high is None or _moment(r["submitted_at"]) < high)]
        rows.sort(key=lambda r: (_moment(r["submitted_at"]), r["code"]), reverse=True)
        return _page(rows, OWNER_COLUMNS, page, page_size)

    def agency_queue(self, agency_code: str, status: str | None, overdue: bool | None, page: int,
                     page_size: int) -> dict[str, Any]:
        rows = [r for r in self.tables["agency_queue"].values()
                if r["agency_code"] == agency_code
                and (r["status"] == status if status else r["status"] not in FINAL)
                and (overdue is None or r["overdue"] == overdue)]
        rows.sort(key=lambda r: (r["appointment_date"] is None, r["appointment_date"] or dt.date.min,
                                 _moment(r["submitted_at"]), r["code"]))
        return _page(rows, QUEUE_COLUMNS, page, page_size)

    def overdue_candidates(self, today: dt.date, limit: int = 500) -> list[str]:
        rows = [r for r in self.tables["dossier_status"].values()
                if r["appointment_date"] is not None and r["appointment_date"] < today and not r["overdue"]
                and not r["paused"] and r["status"] in ACTIVE]
        rows.sort(key=lambda r: r["appointment_date"])
        return [r["code"] for r in rows[:limit]]

    def open_drafts(self, tx: MemoryTx, owner_id: str) -> int:
        return sum(1 for r in self.tables["owner_drafts"].values()
                   if r["owner_id"] == owner_id and r["status"] == "open")

    def owner_drafts(self, owner_id: str, status: str, page: int, page_size: int) -> dict[str, Any]:
        rows = [{**r, "id": r["draft_id"]} for r in self.tables["owner_drafts"].values()
                if r["owner_id"] == owner_id and r["status"] == status]
        rows.sort(key=lambda r: r["draft_id"])
        rows.sort(key=lambda r: _moment(r["updated_at"]), reverse=True)
        return _page(rows, DRAFT_COLUMNS, page, page_size)

    def access_page(self, code: str, page: int, page_size: int) -> dict[str, Any]:
        rows = [r for r in self.tables["access_log"].values() if r["dossier_code"] == code]
        rows.sort(key=lambda r: (r["accessed_at"], r["id"]), reverse=True)
        return _page(rows, ACCESS_COLUMNS, page, page_size)


def _page(rows: list[dict[str, Any]], columns: tuple[str, ...], page: int, page_size: int) -> dict[str, Any]:
    chosen = rows[(page - 1) * page_size:page * page_size]
    return {"items": [jsonable({c: _moment(r[c]) if c.endswith("_at") else r[c] for c in columns}) for r in chosen],
            "total": len(rows), "page": page, "page_size": page_size}
