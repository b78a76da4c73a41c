"""Drafts: save, read, list, discard, and file a draft as a dossier (streams ``draft-<uuid>``).

Each write runs in one transaction like a dossier command: replay the draft's stream, let
``domain.drafts`` decide, store attached documents (content-addressed, marked with the draft),
project the new state, and append with the version read (optimistic concurrency). Only the
owner ever sees a draft; anyone else gets the same 404 as for an unknown id.

Filing a draft runs the very checks of a direct submission (``filing.file_checked``), the
fee exemptions it declares included (recorded as ``FeeExemptionDeclared`` exactly as for a
direct filing), and closes the draft in the same transaction, so a draft becomes at most one
dossier: a second "submit" of the same draft (a retry, a double click, another tab) answers
that dossier.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

from portal_common import config
from portal_common.context import event_context
from portal_common.contracts.dossier import FilingSchema
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import ConcurrencyError
from portal_common.eventstore.events import EventContext, NewEvent, utcnow
from services.dossier import schemas
from services.dossier.application.dossiers import Dossiers
from services.dossier.application.filing import decode_uploads, file_checked, iso_dates
from services.dossier.application.views import draft_view, empty_page, full_view
from services.dossier.domain import drafts
from services.dossier.domain.access import Caller
from services.dossier.domain.documents import Upload
from services.dossier.domain.drafts import DraftState
from services.dossier.repository import Transaction


def max_open_drafts() -> int:
    """Open drafts one applicant may keep (a bound on what an account can make us store)."""
    return config.env_int("MAX_OPEN_DRAFTS", 50, "dossier")


def _not_found() -> NotFound:
    return NotFound("draft_not_found", "No draft with this id.")


def _draft_uuid(draft_id: Any) -> str | None:
    try:
        return str(uuid.UUID(str(draft_id)))
    except (ValueError, TypeError, AttributeError):
        return None


def stream_id(draft_id: str) -> str:
    return f"draft-{draft_id}"


class Drafts:
    """The applicant's drafts, beside the dossiers (same log, same documents)."""

    def __init__(self, dossiers: Dossiers):
        self.dossiers = dossiers
        self.log = dossiers.log
        self.repository = dossiers.repository
        self.read_models = dossiers.read_models

    def load(self, draft_id: str, tx: Transaction | None = None) -> DraftState:
        valid = _draft_uuid(draft_id)
        if valid is None:
            return DraftState()
        return drafts.replay(self.log.read_stream(stream_id(valid), cursor=tx.cursor if tx is not None else None))

    def visible(self, draft_id: str, caller: Caller) -> DraftState:
        state = self.load(draft_id)
        if not state.exists or caller.kind != "applicant" or state.owner.get("account_id") != caller.account_id:
            raise _not_found()
        return state

    def save(self, draft_id: str | None, caller: Caller, owner: dict[str, Any], content: dict[str, Any],
             uploads: list[Upload], keep_document_ids: list[str], expected_version: int | None,
             context: EventContext, now: dt.datetime | None = None) -> DraftState:
        """Create (``draft_id`` None) or replace a draft's content; the documents kept are
        ``keep_document_ids`` (already attached to this draft) plus ``uploads``."""
        now = now or utcnow()
        with self.repository.transaction() as tx:
            if draft_id is None:
                draft_id = str(uuid.uuid4())
                state = DraftState()
                self.repository.lock(tx, f"drafts:{caller.account_id}")
                if self.read_models.open_drafts(tx, caller.account_id or "") >= max_open_drafts():
                    raise Conflict("too_many_drafts", "You have the most open drafts allowed; file or discard one.")
            else:
                state = self.load(draft_id, tx)
                if not state.exists or state.owner.get("account_id") != caller.account_id:
                    raise _not_found()
                draft_id = state.draft_id
            if expected_version is not None and expected_version != state.version:
                raise Conflict("draft_changed", "The draft was saved elsewhere meanwhile; reload it.",
                               {"version": state.version})
            drafts.check(state, "save")
            attached = {d["id"]: d for d in state.documents}
            documents = []
            for i, doc_id in enumerate(keep_document_ids):
                if str(doc_id) not in attached:
                    raise InvalidInput("unknown_document", "Unknown document id.",
                                       [{"field": f"document_ids.{i}", "message": "not attached to this draft"}])
                documents.append(attached[str(doc_id)])
            for upload in uploads:
                documents.append(self.dossiers.store_document(tx, upload, caller.account_id or "", None, "input",
                                                              draft_id=draft_id))
            event_type, data = drafts.saved_event(state, draft_id, owner, content, documents)
            return self._append(tx, state, [(event_type, data)], context, now)

    def discard(self, draft_id: str, caller: Caller, context: EventContext) -> DraftState:
        now = utcnow()
        with self.repository.transaction() as tx:
            state = self.load(draft_id, tx)
            if not state.exists or state.owner.get("account_id") != caller.account_id:
                raise _not_found()
            return self._append(tx, state, [drafts.discarded_event(state)], context, now)

    def mark_submitted(self, tx: Transaction, state: DraftState, code: str, context: EventContext,
                       now: dt.datetime) -> None:
        """Close the draft inside the transaction that files its dossier (see ``submit``)."""
        self._append(tx, state, [drafts.submitted_event(state, code)], context, now)

    def _append(self, tx: Transaction, state: DraftState, decided: list[tuple[str, dict]], context: EventContext,
                now: dt.datetime) -> DraftState:
        new_state = state
        for event_type, data in decided:
            new_state = drafts.evolve(new_state, event_type, data, now)
        self.read_models.project(tx, new_state)
        self.log.append(stream_id(new_state.draft_id), state.version,
                        [NewEvent(t, d, occurred_at=now) for t, d in decided], context=context, cursor=tx.cursor)
        return new_state

    def contents(self, state: DraftState) -> list[Upload]:
        """The draft's documents with their bytes, to file them with the dossier."""
        with self.repository.transaction() as tx:
            return [Upload(doc.get("requirement"), doc["name"], doc["content_type"],
                           self.repository.blob(tx, doc["sha256"]) or b"")
                    for doc in state.documents]

    def document(self, draft_id: str, doc_id: str, caller: Caller) -> tuple[dict[str, Any], bytes]:
        state = self.visible(draft_id, caller)
        ref = next((d for d in state.documents if d["id"] == str(doc_id)), None)
        if ref is None:
            raise NotFound("document_not_found", "No such document in this draft.")
        with self.repository.transaction() as tx:
            return ref, self.repository.blob(tx, ref["sha256"]) or b""

    def owner_list(self, owner_id: str, status: str, page: int, page_size: int) -> dict[str, Any]:
        """The owner's drafts in one status, most recently saved first."""
        return self.read_models.owner_drafts(owner_id, status, page, page_size)


# -- the draft RPCs ---------------------------------------------------------------------------


def _applicant(context: dict[str, Any]) -> Caller:
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise _not_found()
    return caller


def save(app: Drafts, context: dict[str, Any], body: Any, draft_id: str | None = None) -> dict[str, Any]:
    """Create a draft (no id) or replace the content of one of the caller's open drafts."""
    caller = _applicant(context)
    if draft_id is not None:
        app.visible(draft_id, caller)  # 404 before any validation detail leaks
    data = schemas.load(schemas.DraftSchema, body)
    uploads = decode_uploads(data.pop("documents"), "documents")
    actor = (context or {}).get("actor") or {}
    owner = {"account_id": caller.account_id, "kind": actor.get("kind"), "subject": actor.get("subject")}
    content = dict(data, applicant={k: v for k, v in iso_dates(data["applicant"]).items() if v is not None})
    state = app.save(draft_id, caller, owner, content, uploads, data["document_ids"], data["version"],
                     event_context(context))
    return draft_view(state)


def get(app: Drafts, context: dict[str, Any], draft_id: str) -> dict[str, Any]:
    return draft_view(app.visible(draft_id, _applicant(context)))


def list_mine(app: Drafts, context: dict[str, Any], status: Any = "open", page: Any = 1,
              page_size: Any = 20) -> dict[str, Any]:
    caller = Caller.from_context(context)
    args = schemas.load(schemas.DraftListSchema, {"status": status or "open", "page": page, "page_size": page_size})
    if caller.kind != "applicant":
        return empty_page(args)
    return app.owner_list(caller.account_id or "", args["status"], args["page"], args["page_size"])


def discard(app: Drafts, context: dict[str, Any], draft_id: str) -> dict[str, Any]:
    return draft_view(app.discard(draft_id, _applicant(context), event_context(context)))


def submit(app: Drafts, catalog: Any, context: dict[str, Any], draft_id: str) -> dict[str, Any]:
    """File the draft; ``created`` is False when it had been filed already."""
    caller = _applicant(context)
    state = app.visible(draft_id, caller)
    dossiers = app.dossiers
    if state.status == drafts.SUBMITTED:
        return dict(full_view(dossiers.load(state.dossier_code)), created=False)
    drafts.check(state, "submit")
    filing = {"procedure_code": state.procedure_code, "agency_code": state.agency_code,
              "applicant": state.applicant, "form": state.form, "fee_exemptions": state.fee_exemptions}
    data = schemas.load(FilingSchema, {k: v for k, v in filing.items() if v is not None})
    uploads = app.contents(state)

    def close_draft(tx: Transaction, code: str, now: dt.datetime) -> None:
        app.mark_submitted(tx, state, code, event_context(context), now)

    try:
        dossier, created = file_checked(dossiers, catalog, context, data, uploads, also=close_draft)
    except ConcurrencyError:  # filed (or changed) by a concurrent call: everything here rolled back
        again = app.load(draft_id)
        if again.status == drafts.SUBMITTED:
            return dict(full_view(dossiers.load(again.dossier_code)), created=False)
        raise Conflict("draft_changed", "The draft changed meanwhile; reload it and submit again.") from None
    return dict(full_view(dossier), created=created)


def document(app: Drafts, context: dict[str, Any], draft_id: str, document_id: str) -> dict[str, Any]:
    ref, content = app.document(draft_id, document_id, _applicant(context))
    return {"document": ref, "content_base64": base64.b64encode(content).decode()}
