"""Commands and queries of the dossier service over PostgreSQL.

Every command runs in one transaction: read the dossier's stream, replay it, let the pure
domain decide, update the projections from the new state, and append the decided events as
the last write with the version that was read (optimistic concurrency). When another
command got there first the append fails, the transaction rolls back, and the command is
retried on the fresh state; after a few losses the caller gets ``Conflict``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal_common import config
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from portal_common.eventstore.errors import ConcurrencyError
from portal_common.eventstore.events import EventContext, NewEvent, utcnow
from services.dossier import projections
from services.dossier.domain import lifecycle
from services.dossier.domain.calendar import LOCAL_TZ, local_date
from services.dossier.domain.codes import format_code, looks_like_code, stream_id
from services.dossier.domain.documents import DEFAULT_MAX_BYTES, Upload
from services.dossier.domain.lifecycle import DossierState

RETRIES = 4


@dataclass(frozen=True)
class Caller:
    """Whose request this is: an applicant (owner id) or an agency (its code), or the system."""

    kind: str  # "applicant" | "agency" | "system" | "anonymous"
    account_id: str | None = None
    agency_code: str | None = None

    @classmethod
    def from_context(cls, context: dict[str, Any] | None) -> Caller:
        actor = (context or {}).get("actor") or {}
        role = actor.get("kind")
        if role in ("citizen", "business"):
            return cls("applicant", account_id=str(actor.get("id")))
        if role in ("officer", "agency_system") and actor.get("agency_code"):
            return cls("agency", account_id=str(actor.get("id")), agency_code=str(actor["agency_code"]))
        return cls("anonymous")  # sees nothing: the system caller is only ever built in-process

    def can_see(self, state: DossierState) -> bool:
        """Owner, or an agency the dossier was routed to, or the system."""
        if self.kind == "applicant":
            return state.owner.get("account_id") == self.account_id
        if self.kind == "agency":
            return self.agency_code in state.agencies
        return self.kind == "system"

    def can_act(self, state: DossierState, command: str) -> bool:
        if self.kind == "applicant":
            return command in lifecycle.APPLICANT_COMMANDS and self.can_see(state)
        if self.kind == "agency":
            return command in lifecycle.AGENCY_COMMANDS and state.agency_code == self.agency_code
        return self.kind == "system" and command == "mark_overdue"


def max_document_bytes() -> int:
    return config.env_int("MAX_DOCUMENT_BYTES", DEFAULT_MAX_BYTES, "dossier")


def max_documents() -> int:
    """Documents one dossier may hold (inputs, uploads and outputs together)."""
    return config.env_int("MAX_DOCUMENTS_PER_DOSSIER", 100, "dossier")


def _not_found() -> NotFound:
    return NotFound("dossier_not_found", "No dossier with this code.")


class DossierRepository:
    """The dossier service's data: event log, projections, blobs."""

    def __init__(self, db: Database, store: EventStore | None = None):
        self.db = db
        self.store = store or EventStore(db)

    # -- loading ---------------------------------------------------------------------

    def load(self, code: str, as_of: dt.datetime | None = None, cursor: Any = None) -> DossierState:
        """The dossier's state replayed from its stream (as it was at ``as_of`` if given).

        ``as_of`` compares with each event's ``occurred_at``, the time its timeline shows, so
        asking for the moment of a timeline entry includes that entry.
        """
        if not looks_like_code(code):
            return DossierState()
        events = self.store.read_stream(stream_id(code), cursor=cursor)
        if as_of is not None:
            events = list(itertools.takewhile(lambda e: e.occurred_at <= as_of, events))
        return lifecycle.replay(events)

    def visible(self, code: str, caller: Caller, as_of: dt.datetime | None = None) -> DossierState:
        """The dossier if the caller may see it; NotFound otherwise (same answer as unknown)."""
        current = self.load(code)
        if not current.exists or not caller.can_see(current):
            raise _not_found()
        if as_of is None:
            return current
        past = self.load(code, as_of=as_of)
        if not past.exists:
            raise NotFound("not_yet_submitted", "The dossier did not exist at that time.")
        return past

    # -- documents -------------------------------------------------------------------

    def store_document(self, cur: Any, upload: Upload, owner_id: str, code: str | None,
                        kind: str, draft_id: str | None = None) -> dict[str, Any]:
        self._store_blob(cur, upload)
        ref, sql = self._document_row(cur, upload, owner_id, code, kind, draft_id)
        cur.execute(sql)
        return ref

    @staticmethod
    def _store_blob(cur: Any, upload: Upload) -> None:
        cur.execute("INSERT INTO blobs (sha256, size, content) VALUES (%s, %s, %s) "
                    "ON CONFLICT (sha256) DO NOTHING", (upload.sha256, upload.size, upload.content))

    @staticmethod
    def _document_row(cur: Any, upload: Upload, owner_id: str, code: str | None, kind: str,
                      draft_id: str | None = None) -> tuple[dict[str, Any], bytes]:
        """A new document's reference and the INSERT that records it (its blob stored before)."""
        doc_id = str(uuid.uuid4())
        sql = cur.mogrify("INSERT INTO documents (id, dossier_code, draft_id, owner_id, kind, requirement, name, "
                          "content_type, size, sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                          (doc_id, code, draft_id, owner_id, kind, upload.requirement, upload.name,
                           upload.content_type, upload.size, upload.sha256))
        return {"id": doc_id, "requirement": upload.requirement, "name": upload.name,
                "content_type": upload.content_type, "size": upload.size, "sha256": upload.sha256}, sql

    def upload(self, code: str, caller: Caller, upload: Upload) -> dict[str, Any]:
        """Store a document the owner will attach to a supplement.

        Staged, not yet part of the dossier: it joins the dossier (and its log) only through
        the DossierSupplemented event that names it, so no event is written here.
        """
        state = self.load(code)
        if not state.exists or caller.kind != "applicant" or not caller.can_see(state):
            raise _not_found()
        if state.status in lifecycle.FINAL:
            raise Conflict("transition_not_allowed", "The dossier is closed.",
                           {"state": state.status, "command": "upload"})
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"upload:{code}",))
            cur.execute("SELECT count(*) FROM documents WHERE dossier_code = %s", (code,))
            if cur.fetchone()[0] >= max_documents():
                raise Conflict("too_many_documents", "This dossier holds the most documents allowed.")
            return self.store_document(cur, upload, caller.account_id, code, "input")

    def staged_documents(self, cur: Any, code: str, ids: list[str]) -> list[dict[str, Any]]:
        """The uploaded documents of this dossier with these ids (unknown ids are refused)."""
        refs = []
        for i, doc_id in enumerate(ids):
            try:
                uuid.UUID(str(doc_id))
            except ValueError:
                raise InvalidInput("unknown_document", "Unknown document id.",
                                   [{"field": f"document_ids.{i}", "message": "unknown"}]) from None
            cur.execute("SELECT id::text, requirement, name, content_type, size, sha256 FROM documents "
                        "WHERE id = %s AND dossier_code = %s AND kind = 'input'", (doc_id, code))
            row = cur.fetchone()
            if row is None:
                raise InvalidInput("unknown_document", "Unknown document id.",
                                   [{"field": f"document_ids.{i}", "message": "unknown"}])
            refs.append(dict(zip(("id", "requirement", "name", "content_type", "size", "sha256"), row,
                                 strict=True)))
        return refs

    def document(self, code: str, doc_id: str, caller: Caller) -> tuple[dict[str, Any], bytes]:
        """A document of a dossier the caller may see: metadata and bytes."""
        state = self.visible(code, caller)
        known = {d["id"]: d for d in [*state.inputs, *state.outputs]}
        ref = known.get(str(doc_id))
        with self.db.transaction(dict_rows=False) as cur:
            if ref is None and caller.kind == "applicant":
                try:
                    ref = self.staged_documents(cur, code, [doc_id])[0]
                except InvalidInput:
                    ref = None
            if ref is None:
                raise NotFound("document_not_found", "No such document in this dossier.")
            cur.execute("SELECT content FROM blobs WHERE sha256 = %s", (ref["sha256"],))
            row = cur.fetchone()
        if row is None:
            raise NotFound("document_not_found", "No such document in this dossier.")
        return ref, bytes(row[0])

    # -- submitting ------------------------------------------------------------------

    def submit(self, *, owner: dict[str, Any], applicant: dict[str, Any], form: dict[str, Any],
               procedure: dict[str, Any], agency: dict[str, Any], uploads: list[Upload],
               idempotency_key: str | None, context: EventContext,
               now: dt.datetime | None = None, request_hash: str | None = None,
               also: Callable[[Any, str, dt.datetime], None] | None = None) -> tuple[DossierState, bool]:
        """File a dossier (checks against the catalog are done by the caller).

        Returns (state, created); a retry with the same idempotency key returns the dossier
        the first call created, and ``created`` is False. ``request_hash`` identifies the
        filing for that comparison (by default: a hash of what is stored). ``also(cursor,
        code, now)`` runs in the same transaction, before the append (closing a draft).
        """
        now = now or utcnow()
        request_hash = request_hash or _request_hash(procedure, agency, applicant, form, uploads)
        with self.db.transaction(dict_rows=False) as cur:
            if idempotency_key:
                cur.execute("INSERT INTO idempotency_keys (owner_id, key, request_hash) VALUES (%s, %s, %s) "
                            "ON CONFLICT DO NOTHING RETURNING 1",
                            (owner["account_id"], idempotency_key, request_hash))
                if cur.fetchone() is None:
                    cur.execute("SELECT request_hash, code FROM idempotency_keys WHERE owner_id = %s AND key = %s",
                                (owner["account_id"], idempotency_key))
                    stored_hash, code = cur.fetchone()
                    if stored_hash != request_hash:
                        raise Conflict("idempotency_key_reused",
                                       "This Idempotency-Key was used for a different submission.")
                    return self.load(code, cursor=cur), False
            for upload in uploads:  # before the counter: content needs no code
                self._store_blob(cur, upload)
            # From here to the commit this agency's counter row is locked: one round trip for
            # the code, one for every other write, one for the append, then the commit.
            day = local_date(now)
            cur.execute("INSERT INTO code_counters (agency_code, day, last_value) VALUES (%s, %s, 1) "
                        "ON CONFLICT (agency_code, day) DO UPDATE SET last_value = code_counters.last_value + 1 "
                        "RETURNING last_value", (agency["code"], day))
            code = format_code(agency["code"], day, cur.fetchone()[0])
            rows = [self._document_row(cur, u, owner["account_id"], code, "input") for u in uploads]
            event_type, data = lifecycle.submitted_event(
                code=code, owner=owner, applicant=applicant, form=form, procedure=procedure,
                agency=agency, documents=[ref for ref, _ in rows], now=now, idempotency_key=idempotency_key)
            state = lifecycle.evolve(DossierState(), event_type, data, now, context.actor.as_dict())
            writes = [sql for _, sql in rows] + projections.statements(cur, state)
            if idempotency_key:
                writes.append(cur.mogrify("UPDATE idempotency_keys SET code = %s WHERE owner_id = %s AND key = %s",
                                          (code, owner["account_id"], idempotency_key)))
            cur.execute(b";\n".join(writes))
            if also is not None:
                also(cur, code, now)
            self.store.append(stream_id(code), 0, [NewEvent(event_type, data, occurred_at=now)],
                              context=context, cursor=cur)
        return state, True

    def submitted_with(self, owner_id: str, idempotency_key: str, request_hash: str) -> DossierState | None:
        """The dossier this owner already filed with this key (None if none committed yet).

        Raises Conflict when the key was used for a different filing.
        """
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT request_hash, code FROM idempotency_keys WHERE owner_id = %s AND key = %s",
                        (owner_id, idempotency_key))
            row = cur.fetchone()
            if row is None or row[1] is None:
                return None
            if row[0] != request_hash:
                raise Conflict("idempotency_key_reused", "This Idempotency-Key was used for a different submission.")
            return self.load(row[1], cursor=cur)

    # -- lifecycle commands ----------------------------------------------------------

    def execute(self, code: str, command: str, args: dict[str, Any], caller: Caller,
                context: EventContext, *, uploads: list[Upload] | None = None,
                document_ids: list[str] | None = None, now: dt.datetime | None = None) -> DossierState:
        """Run one lifecycle command; raises (and writes nothing) when it is refused."""
        for _attempt in range(RETRIES):
            try:
                return self._execute_once(code, command, dict(args), caller, context, uploads or [],
                                          document_ids or [], now or utcnow())
            except ConcurrencyError:
                continue
        raise Conflict("concurrent_update", "The dossier changed meanwhile; try again.")

    def _execute_once(self, code, command, args, caller, context, uploads, document_ids, now) -> DossierState:
        with self.db.transaction(dict_rows=False) as cur:
            state = self.load(code, cursor=cur)
            if not state.exists or not caller.can_see(state):
                raise _not_found()
            if not caller.can_act(state, command):
                if caller.kind == "agency" and state.agency_code != caller.agency_code:
                    raise Conflict("not_assigned", "The dossier is no longer at your agency.",
                                   {"state": state.status, "command": command})
                raise Conflict("transition_not_allowed", f"'{command}' is not yours to do.",
                               {"state": state.status, "command": command})
            lifecycle.check(state, command, local_date(now))
            if uploads or document_ids:
                kind = "output" if command == "result" else "input"
                owner_id = state.owner["account_id"]
                docs = self.staged_documents(cur, code, document_ids) if document_ids else []
                docs += [self.store_document(cur, u, owner_id, code, kind) for u in uploads]
                args["documents"] = docs
            decided = lifecycle.decide(state, command, args, now)
            new_state = state
            actor = context.actor.as_dict()
            for event_type, data in decided:
                new_state = lifecycle.evolve(new_state, event_type, data, now, actor)
            projections.apply(cur, new_state)
            self.store.append(stream_id(code), state.version,
                              [NewEvent(t, d, occurred_at=now) for t, d in decided],
                              context=context, cursor=cur)
        return new_state

    # -- queries ---------------------------------------------------------------------

    def lookup(self, code: str) -> dict[str, Any]:
        """The public status of a dossier (no personal data), from the status projection."""
        if not looks_like_code(code):
            raise _not_found()
        with self.db.transaction() as cur:
            cur.execute("SELECT code, status, procedure_code, procedure_name, agency_code, agency_name, "
                        "received_at, appointment_date, overdue FROM dossier_status WHERE code = %s", (code,))
            row = cur.fetchone()
        if row is None:
            raise _not_found()
        return {"code": row["code"], "status": row["status"],
                "procedure": {"code": row["procedure_code"], "name": row["procedure_name"]},
                "agency": {"code": row["agency_code"], "name": row["agency_name"]},
                **_jsonable({"received_at": row["received_at"], "appointment_date": row["appointment_date"]}),
                "overdue": row["overdue"]}

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
            args.append(_local_midnight(submitted_from))
        if submitted_to:
            where += " AND submitted_at < %s"
            args.append(_local_midnight(submitted_to + dt.timedelta(days=1)))
        with self.db.transaction() as cur:
            return page_of(cur, "code, status, procedure_code, procedure_name, agency_code, submitted_at, "
                           "appointment_date, updated_at", "owner_dossiers", where, args,
                           "submitted_at DESC, code DESC", page, page_size)

    def agency_queue(self, agency_code: str, status: str | None, overdue: bool | None, page: int,
                     page_size: int) -> dict[str, Any]:
        """The dossiers an agency holds, due soonest first; closed ones only when asked by status."""
        where, args = "agency_code = %s", [agency_code]
        if status:
            where += " AND status = %s"
            args.append(status)
        else:
            where += " AND NOT (status = ANY(%s))"
            args.append(sorted(lifecycle.FINAL))
        if overdue is not None:
            where += " AND overdue = %s"
            args.append(overdue)
        with self.db.transaction() as cur:
            return page_of(cur, "code, status, procedure_code, procedure_name, submitted_at, appointment_date, "
                           "overdue, paused, updated_at", "agency_queue", where, args,
                           "appointment_date NULLS LAST, submitted_at, code", page, page_size)

    def overdue_candidates(self, today: dt.date, limit: int = 500) -> list[str]:
        """Dossiers past their appointment date that are not yet marked overdue."""
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT code FROM dossier_status WHERE appointment_date < %s AND NOT overdue "
                        "AND NOT paused AND status = ANY(%s) ORDER BY appointment_date LIMIT %s",
                        (today, sorted(lifecycle.ACTIVE), limit))
            return [r[0] for r in cur.fetchall()]

    def mark_overdue(self, today: dt.date | None = None, now: dt.datetime | None = None,
                     batch: int = 500) -> list[str]:
        """Record DossierBecameOverdue on every newly overdue dossier; returns their codes.

        Works in batches until no candidate is left; a dossier that changed meanwhile
        (resolved, paused, or marked by another instance of the job) is skipped, not retried.
        """
        now = now or utcnow()
        marked: list[str] = []
        skipped: set[str] = set()
        while True:
            candidates = [c for c in self.overdue_candidates(today or local_date(now), batch + len(skipped))
                          if c not in skipped]
            if not candidates:
                return marked
            for code in candidates:
                try:
                    self.execute(code, "mark_overdue", {}, Caller("system"), EventContext(), now=now)
                    marked.append(code)
                except Conflict:
                    skipped.add(code)


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), LOCAL_TZ)


def page_of(cur, columns: str, table: str, where: str, args: list, order: str, page: int,
            page_size: int) -> dict[str, Any]:
    """One page of a projection's rows with the total count, as the list RPCs answer it.

    ``columns``, ``table``, ``where`` and ``order`` are this module's own SQL text; values go in
    ``args`` only.
    """
    cur.execute(f"SELECT count(*) AS n FROM {table} WHERE {where}", args)
    total = cur.fetchone()["n"]
    cur.execute(f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s",
                [*args, page_size, (page - 1) * page_size])
    items = [_jsonable(r) for r in cur.fetchall()]
    return {"items": items, "total": total, "page": page, "page_size": page_size}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with dates as ISO text (RPC replies are JSON)."""
    return {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in row.items()}


def _request_hash(procedure, agency, applicant, form, uploads: list[Upload]) -> str:
    body = json.dumps({"procedure": procedure.get("code"), "agency": agency.get("code"),
                       "applicant": applicant, "form": form,
                       "documents": [[u.requirement, u.sha256] for u in uploads]},
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
