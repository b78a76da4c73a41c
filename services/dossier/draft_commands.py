"""What each draft RPC does: save, read, list, discard, and file a draft as a dossier.

Filing a draft runs the very checks of a direct submission (``commands.file_checked``) and
closes the draft in the same transaction, so a draft becomes at most one dossier: a second
"submit" of the same draft (a retry, a double click, another tab) answers that dossier.
"""

from __future__ import annotations

from typing import Any

from portal_common.context import event_context
from portal_common.errors import Conflict, NotFound
from portal_common.eventstore import ConcurrencyError
from services.dossier import schemas
from services.dossier.commands import _uploads, file_checked, full_view, iso_dates
from services.dossier.domain import drafts
from services.dossier.drafts import DraftRepository, draft_view
from services.dossier.repository import Caller


def _applicant(context: dict[str, Any]) -> Caller:
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise NotFound("draft_not_found", "No draft with this id.")
    return caller


def save(drafts_repo: DraftRepository, context: dict[str, Any], body: Any,
         draft_id: str | None = None) -> dict[str, Any]:
    """Create a draft (no id) or replace the content of one of the caller's open drafts."""
    caller = _applicant(context)
    if draft_id is not None:
        drafts_repo.visible(draft_id, caller)  # 404 before any validation detail leaks
    data = schemas.load(schemas.DraftSchema, body)
    uploads = _uploads(data.pop("documents"), "documents")
    actor = (context or {}).get("actor") or {}
    owner = {"account_id": caller.account_id, "kind": actor.get("kind"), "subject": actor.get("subject")}
    content = dict(data, applicant={k: v for k, v in iso_dates(data["applicant"]).items() if v is not None})
    state = drafts_repo.save(draft_id, caller, owner, content, uploads, data["document_ids"], data["version"],
                             event_context(context))
    return draft_view(state)


def get(drafts_repo: DraftRepository, context: dict[str, Any], draft_id: str) -> dict[str, Any]:
    return draft_view(drafts_repo.visible(draft_id, _applicant(context)))


def list_mine(drafts_repo: DraftRepository, context: dict[str, Any], status: Any = "open", page: Any = 1,
              page_size: Any = 20) -> dict[str, Any]:
    caller = Caller.from_context(context)
    args = schemas.load(schemas.DraftListSchema, {"status": status or "open", "page": page, "page_size": page_size})
    if caller.kind != "applicant":
        return {"items": [], "total": 0, "page": args["page"], "page_size": args["page_size"]}
    return drafts_repo.owner_list(caller.account_id or "", args["status"], args["page"], args["page_size"])


def discard(drafts_repo: DraftRepository, context: dict[str, Any], draft_id: str) -> dict[str, Any]:
    caller = _applicant(context)
    return draft_view(drafts_repo.discard(draft_id, caller, event_context(context)))


def submit(drafts_repo: DraftRepository, catalog: Any, context: dict[str, Any], draft_id: str) -> dict[str, Any]:
    """File the draft; ``created`` is False when it had been filed already."""
    caller = _applicant(context)
    state = drafts_repo.visible(draft_id, caller)
    repo = drafts_repo.dossiers
    if state.status == drafts.SUBMITTED:
        return dict(full_view(repo.load(state.dossier_code)), created=False)
    drafts.check(state, "submit")
    filing = {"procedure_code": state.procedure_code, "agency_code": state.agency_code,
              "applicant": state.applicant, "form": state.form}
    data = schemas.load(schemas.FilingSchema, {k: v for k, v in filing.items() if v is not None})
    uploads = drafts_repo.contents(state)

    def close_draft(cur: Any, code: str, now: Any) -> None:
        drafts_repo.mark_submitted(cur, state, code, event_context(context), now)

    try:
        dossier, created = file_checked(repo, catalog, context, data, uploads, also=close_draft)
    except ConcurrencyError:  # filed (or changed) by a concurrent call: everything here rolled back
        again = drafts_repo.load(draft_id)
        if again.status == drafts.SUBMITTED:
            return dict(full_view(repo.load(again.dossier_code)), created=False)
        raise Conflict("draft_changed", "The draft changed meanwhile; reload it and submit again.") from None
    return dict(full_view(dossier), created=created)


def document(drafts_repo: DraftRepository, context: dict[str, Any], draft_id: str, document_id: str):
    return drafts_repo.document(draft_id, document_id, _applicant(context))
