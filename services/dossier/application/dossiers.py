"""The dossier use cases: file, act on, read and list dossiers.

Every command runs in one transaction of the repository: read the dossier's stream, replay
it, authorize, let the pure domain decide, evolve the state, project it into the read models,
and append the decided events as the last write with the version that was read (optimistic
concurrency). When another command got there first the append fails, the transaction rolls
back, and the command is retried on the fresh state; after a few losses the caller gets
``Conflict``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from typing import Any

from portal_common import config
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import ConcurrencyError, EventLog
from portal_common.eventstore.events import EventContext, NewEvent, utcnow
from services.dossier.application.views import status_attributes, with_national_code
from services.dossier.domain import lifecycle
from services.dossier.domain.access import SYSTEM_CALLER, Caller
from services.dossier.domain.calendar import local_date
from services.dossier.domain.codes import looks_like_code, stream_id, with_code
from services.dossier.domain.documents import DEFAULT_MAX_BYTES, Upload
from services.dossier.domain.filing import filing_hash
from services.dossier.domain.lifecycle import DossierState
from services.dossier.queries import ReadModels
from services.dossier.repository import KeyUsed, Repository, Transaction

RETRIES = 4


def max_document_bytes() -> int:
    return config.env_int("MAX_DOCUMENT_BYTES", DEFAULT_MAX_BYTES, "dossier")


def max_documents() -> int:
    """Documents one dossier may hold (inputs, uploads and outputs together)."""
    return config.env_int("MAX_DOCUMENTS_PER_DOSSIER", 100, "dossier")


def evolved(state: DossierState, decided: list[tuple[str, dict[str, Any]]], now: dt.datetime,
            actor: dict[str, Any]) -> tuple[DossierState, list[NewEvent]]:
    """The state after the decided events, and those events ready to append, each carrying the
    status it leaves the dossier in."""
    events = []
    for event_type, data in decided:
        state = lifecycle.evolve(state, event_type, data, now, actor)
        events.append(NewEvent(event_type, data, occurred_at=now, attributes=status_attributes(state.status)))
    return state, events


def not_found() -> NotFound:
    return NotFound("dossier_not_found", "No dossier with this code.")


class Dossiers:
    """The dossier service's use cases over its event log, repository and read models."""

    def __init__(self, log: EventLog, repository: Repository, read_models: ReadModels):
        self.log = log
        self.repository = repository
        self.read_models = read_models

    # -- loading ---------------------------------------------------------------------

    def load(self, code: str, as_of: dt.datetime | None = None, tx: Transaction | None = None) -> DossierState:
        """The dossier's state replayed from its stream (as it was at ``as_of`` if given).

        ``as_of`` compares with each event's ``occurred_at``, the time its timeline shows, so
        asking for the moment of a timeline entry includes that entry.
        """
        if not looks_like_code(code):
            return DossierState()
        events = self.log.read_stream(stream_id(code), cursor=tx.cursor if tx is not None else None)
        if as_of is not None:
            events = list(itertools.takewhile(lambda e: e.occurred_at <= as_of, events))
        return lifecycle.replay(events)

    def visible(self, code: str, caller: Caller, as_of: dt.datetime | None = None) -> DossierState:
        """The dossier if the caller may see it; NotFound otherwise (same answer as unknown)."""
        current = self.load(code)
        if not current.exists or not caller.can_see(current):
            raise not_found()
        if as_of is None:
            return current
        past = self.load(code, as_of=as_of)
        if not past.exists:
            raise NotFound("not_yet_submitted", "The dossier did not exist at that time.")
        return past

    # -- documents -------------------------------------------------------------------

    def store_document(self, tx: Transaction, upload: Upload, owner_id: str, code: str | None, kind: str,
                       draft_id: str | None = None) -> dict[str, Any]:
        self.repository.store_blob(tx, upload)
        return self.repository.add_document(tx, upload, owner_id, code, kind, draft_id)

    def upload(self, code: str, caller: Caller, upload: Upload) -> dict[str, Any]:
        """Store a document the owner will attach to a supplement.

        Staged, not yet part of the dossier: it joins the dossier (and its log) only through
        the DossierSupplemented event that names it, so no event is written here.
        """
        state = self.load(code)
        if not state.exists or caller.kind != "applicant" or not caller.can_see(state):
            raise not_found()
        if state.status in lifecycle.FINAL:
            raise Conflict("transition_not_allowed", "The dossier is closed.",
                           {"state": state.status, "command": "upload"})
        with self.repository.transaction() as tx:
            self.repository.lock(tx, f"upload:{code}")
            if self.repository.count_documents(tx, code) >= max_documents():
                raise Conflict("too_many_documents", "This dossier holds the most documents allowed.")
            return self.store_document(tx, upload, caller.account_id or "", code, "input")

    def staged_documents(self, tx: Transaction, code: str, ids: list[str]) -> list[dict[str, Any]]:
        """The uploaded documents of this dossier with these ids (unknown ids are refused)."""
        refs = []
        for i, doc_id in enumerate(ids):
            try:
                uuid.UUID(str(doc_id))
            except ValueError:
                ref = None
            else:
                ref = self.repository.staged_document(tx, code, str(doc_id))
            if ref is None:
                raise InvalidInput("unknown_document", "Unknown document id.",
                                   [{"field": f"document_ids.{i}", "message": "unknown"}])
            refs.append(ref)
        return refs

    def document(self, code: str, doc_id: str, caller: Caller) -> tuple[dict[str, Any], bytes]:
        """A document of a dossier the caller may see: metadata and bytes."""
        state = self.visible(code, caller)
        known = {d["id"]: d for d in [*state.inputs, *state.outputs, *state.receipts]}
        ref = known.get(str(doc_id))
        with self.repository.transaction() as tx:
            if ref is None and caller.kind == "applicant":
                try:
                    ref = self.staged_documents(tx, code, [doc_id])[0]
                except InvalidInput:
                    ref = None
            if ref is None:
                raise NotFound("document_not_found", "No such document in this dossier.")
            content = self.repository.blob(tx, ref["sha256"])
        if content is None:
            raise NotFound("document_not_found", "No such document in this dossier.")
        return ref, content

    # -- submitting ------------------------------------------------------------------

    def submit(self, *, owner: dict[str, Any], applicant: dict[str, Any], form: dict[str, Any],
               procedure: dict[str, Any], agency: dict[str, Any], uploads: list[Upload],
               idempotency_key: str | None, context: EventContext,
               now: dt.datetime | None = None, request_hash: str | None = None,
               also: Callable[[Transaction, str, dt.datetime], None] | None = None,
               fees: list[dict[str, Any]] | None = None,
               fee_exemptions: list[dict[str, Any]] | None = None) -> tuple[DossierState, bool]:
        """File a dossier (checks against the catalog are done by the caller).

        Returns (state, created); a retry with the same idempotency key returns the dossier
        the first call created, and ``created`` is False. ``request_hash`` identifies the
        filing as sent (``domain.filing.filing_hash``; by default that of what is stored).
        ``also(tx, code, now)`` runs in the same transaction, before the append (closing a draft).
        ``fee_exemptions`` (``[{fee_id, exemption}]``, checked against ``fees``) are recorded after
        the submission and their fees are not requested.
        """
        now = now or utcnow()
        repo = self.repository
        request_hash = request_hash or filing_hash(procedure.get("code"), agency.get("code"), applicant, form,
                                                   uploads)
        try:
            with repo.transaction() as tx:
                if idempotency_key:
                    repo.claim_key(tx, owner["account_id"], idempotency_key, request_hash)
                for upload in uploads:  # before the counter: content needs no code
                    repo.store_blob(tx, upload)
                day = local_date(now)
                code = repo.code_at_commit(tx, agency["code"], day)
                documents = [repo.add_document(tx, u, owner["account_id"], code, "input") for u in uploads]
                event_type, data = lifecycle.submitted_event(
                    code=code, owner=owner, applicant=applicant, form=form, procedure=procedure,
                    agency=agency, documents=documents, now=now, idempotency_key=idempotency_key)
                actor = context.actor.as_dict()
                state, events = evolved(DossierState(), [(event_type, data)], now, actor)
                state, declared = evolved(state, lifecycle.exemptions_declared(
                    state, fees or [], fee_exemptions or [], now), now, actor)
                events += declared
                before, later = lifecycle.fees_due(fees or [],
                                                   exempted=[c["fee_id"] for c in fee_exemptions or []])
                for lines, blocking in ((before, True), (later, False)):
                    if lines:  # the fees due: waited for before reception, or due with it
                        state, requested = evolved(state, [lifecycle.payment_requested_event(
                            state, request_id=str(uuid.uuid4()), amount=sum(f["amount"] for f in lines),
                            reason="Lệ phí, phí của thủ tục", fees=lines, due_date=None, blocking=blocking)],
                            now, actor)
                        events += requested
                self.read_models.project(tx, state, new=True)  # its code was just drawn
                if idempotency_key:
                    repo.bind_key(tx, owner["account_id"], idempotency_key, code)
                if also is not None:
                    also(tx, code, now)
                repo.commit_with_next(tx)  # the agency's counter is held until the commit: no extra wait
                self.log.append(stream_id(code), 0, events, context=context, cursor=tx.cursor)
        except KeyUsed:  # a filing with this key committed first (the claim waited for it)
            earlier = self.submitted_with(owner["account_id"], idempotency_key or "", request_hash)
            if earlier is None:
                raise Conflict("idempotency_key_in_use",
                               "A filing with this Idempotency-Key is in progress; try again.") from None
            return earlier, False
        drawn = repo.drawn_code(tx)  # ``code`` may be a stand-in (``Repository.code_at_commit``)
        return (state if code == drawn else with_code(state, code, drawn)), True

    def submitted_with(self, owner_id: str, idempotency_key: str, request_hash: str) -> DossierState | None:
        """The dossier this owner already filed with this key (None if none committed yet).

        Raises Conflict when the key was used for a different filing. Read without a
        transaction (one round trip for a new key): the key's dossier, once bound, is committed
        and its log only grows.
        """
        with self.repository.reading() as tx:
            record = self.repository.key_record(tx, owner_id, idempotency_key)
            if record is None or record[1] is None:
                return None
            if record[0] != request_hash:
                raise Conflict("idempotency_key_reused", "This Idempotency-Key was used for a different submission.")
            return self.load(record[1], tx=tx)

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

    def _execute_once(self, code: str, command: str, args: dict[str, Any], caller: Caller,
                      context: EventContext, uploads: list[Upload], document_ids: list[str],
                      now: dt.datetime) -> DossierState:
        with self.repository.transaction() as tx:
            events = self.log.read_stream(stream_id(code), cursor=tx.cursor) if looks_like_code(code) else []
            state = lifecycle.replay(events)
            if not state.exists or not caller.can_see(state):
                raise not_found()
            if lifecycle.is_repeat(events[-1], command, context.correlation_id, context.actor.id):
                return state  # this very request was applied already: answer what it made
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
                docs = self.staged_documents(tx, code, document_ids) if document_ids else []
                docs += [self.store_document(tx, u, owner_id, code, kind) for u in uploads]
                args["documents"] = docs
            new_state, events = evolved(state, lifecycle.decide(state, command, args, now), now,
                                        context.actor.as_dict())
            self.read_models.project(tx, new_state)
            self.repository.commit_with_next(tx)  # the append is the last statement: it commits too
            self.log.append(stream_id(code), state.version, events, context=context, cursor=tx.cursor)
        return new_state

    # -- queries ---------------------------------------------------------------------

    def lookup(self, code: str) -> dict[str, Any]:
        """The public status of a dossier (no personal data), from the status projection."""
        found = self.read_models.lookup(code) if looks_like_code(code) else None
        if found is None:
            raise not_found()
        return with_national_code(found)

    def owner_list(self, owner_id: str, status: str | None, page: int, page_size: int, *,
                   procedure_code: str | None = None, submitted_from: dt.date | None = None,
                   submitted_to: dt.date | None = None) -> dict[str, Any]:
        """The owner's dossiers, newest first; the dates are local days, both ends included."""
        return self.read_models.owner_list(owner_id, status, page, page_size, procedure_code=procedure_code,
                                           submitted_from=submitted_from, submitted_to=submitted_to)

    def agency_queue(self, agency_code: str, status: str | None, overdue: bool | None, page: int,
                     page_size: int) -> dict[str, Any]:
        """The dossiers an agency holds, due soonest first; closed ones only when asked by status."""
        return self.read_models.agency_queue(agency_code, status, overdue, page, page_size)

    # -- the overdue job -------------------------------------------------------------

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
            candidates = [c for c in self.read_models.overdue_candidates(today or local_date(now),
                                                                         batch + len(skipped))
                          if c not in skipped]
            if not candidates:
                return marked
            for code in candidates:
                try:
                    self.execute(code, "mark_overdue", {}, SYSTEM_CALLER, EventContext(), now=now)
                    marked.append(code)
                except Conflict:
                    skipped.add(code)
