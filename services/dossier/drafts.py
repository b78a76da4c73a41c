"""Drafts over PostgreSQL: save, list, read, discard, and close a draft when it is filed.

Each write runs in one transaction like a dossier command: replay the draft's stream, let
``domain.drafts`` decide, store attached documents (content-addressed, marked with the draft),
update the ``drafts`` projection, and append with the version read (optimistic concurrency).
Only the owner ever sees a draft; anyone else gets the same 404 as for an unknown id.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from portal_common import config
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent, utcnow
from services.dossier import projections
from services.dossier.domain import drafts
from services.dossier.domain.documents import Upload
from services.dossier.domain.drafts import DraftState
from services.dossier.repository import Caller, DossierRepository, page_of


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


class DraftRepository:
    """The applicant's drafts, beside the dossiers (same schema, same blobs)."""

    def __init__(self, dossiers: DossierRepository):
        self.dossiers = dossiers
        self.db = dossiers.db
        self.store: EventStore = dossiers.store

    def load(self, draft_id: str, cursor: Any = None) -> DraftState:
        valid = _draft_uuid(draft_id)
        if valid is None:
            return DraftState()
        return drafts.replay(self.store.read_stream(stream_id(valid), cursor=cursor))

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
        with self.db.transaction(dict_rows=False) as cur:
            if draft_id is None:
                draft_id = str(uuid.uuid4())
                state = DraftState()
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"drafts:{caller.account_id}",))
                cur.execute("SELECT count(*) FROM owner_drafts WHERE owner_id = %s AND status = 'open'",
                            (caller.account_id,))
                if cur.fetchone()[0] >= max_open_drafts():
                    raise Conflict("too_many_drafts", "You have the most open drafts allowed; file or discard one.")
            else:
                state = self.load(draft_id, cursor=cur)
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
                documents.append(self.dossiers.store_document(cur, upload, caller.account_id, None, "input",
                                                               draft_id=draft_id))
            event_type, data = drafts.saved_event(state, draft_id, owner, content, documents)
            return self._append(cur, state, [(event_type, data)], context, now)

    def discard(self, draft_id: str, caller: Caller, context: EventContext) -> DraftState:
        now = utcnow()
        with self.db.transaction(dict_rows=False) as cur:
            state = self.load(draft_id, cursor=cur)
            if not state.exists or state.owner.get("account_id") != caller.account_id:
                raise _not_found()
            return self._append(cur, state, [drafts.discarded_event(state)], context, now)

    def mark_submitted(self, cur: Any, state: DraftState, code: str, context: EventContext,
                       now: dt.datetime) -> None:
        """Close the draft inside the transaction that files its dossier (see commands.submit_draft)."""
        self._append(cur, state, [drafts.submitted_event(state, code)], context, now)

    def _append(self, cur: Any, state: DraftState, decided: list[tuple[str, dict]], context: EventContext,
                now: dt.datetime) -> DraftState:
        new_state = state
        for event_type, data in decided:
            new_state = drafts.evolve(new_state, event_type, data, now)
        projections.apply(cur, new_state)
        self.store.append(stream_id(new_state.draft_id), state.version,
                          [NewEvent(t, d, occurred_at=now) for t, d in decided], context=context, cursor=cur)
        return new_state

    def contents(self, state: DraftState) -> list[Upload]:
        """The draft's documents with their bytes, to file them with the dossier."""
        uploads = []
        with self.db.transaction(dict_rows=False) as cur:
            for doc in state.documents:
                cur.execute("SELECT content FROM blobs WHERE sha256 = %s", (doc["sha256"],))
                uploads.append(Upload(doc.get("requirement"), doc["name"], doc["content_type"],
                                      bytes(cur.fetchone()[0])))
        return uploads

    def document(self, draft_id: str, doc_id: str, caller: Caller) -> tuple[dict[str, Any], bytes]:
        state = self.visible(draft_id, caller)
        ref = next((d for d in state.documents if d["id"] == str(doc_id)), None)
        if ref is None:
            raise NotFound("document_not_found", "No such document in this draft.")
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT content FROM blobs WHERE sha256 = %s", (ref["sha256"],))
            return ref, bytes(cur.fetchone()[0])

    def owner_list(self, owner_id: str, status: str, page: int, page_size: int) -> dict[str, Any]:
        """The owner's drafts in one status, most recently saved first."""
        with self.db.transaction() as cur:
            return page_of(cur, "draft_id::text AS id, status, procedure_code, agency_code, dossier_code, "
                           "documents, created_at, updated_at, version", "owner_drafts",
                           "owner_id = %s AND status = %s", [owner_id, status], "updated_at DESC, draft_id",
                           page, page_size)


def draft_view(state: DraftState) -> dict[str, Any]:
    """The owner's view of a draft."""
    return {"id": state.draft_id, "status": state.status, "version": state.version,
            "procedure_code": state.procedure_code, "agency_code": state.agency_code,
            "applicant": state.applicant, "form": state.form, "documents": state.documents,
            "dossier_code": state.dossier_code, "created_at": state.created_at, "updated_at": state.updated_at}
