"""The RPCs on a filed dossier: agency actions, the owner's supplement and withdrawal, uploads,
reads (recorded in the access log when staff read) and the owner's and agency's lists.

Each validates its input with the boundary schemas, authorizes through ``Caller``, and runs
one use case of ``Dossiers``; the catalog is asked (to forward) before any transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

from portal_common.context import event_context
from portal_common.errors import InvalidInput, NotFound
from services.dossier import schemas
from services.dossier.application import access
from services.dossier.application.dossiers import Dossiers, not_found
from services.dossier.application.filing import catalog_call, decode_uploads
from services.dossier.application.views import empty_page, full_view, with_national_code
from services.dossier.domain.access import Caller, owner_timeline


def act(app: Dossiers, catalog: Any, context: dict[str, Any], code: str, action: str, body: Any) -> dict[str, Any]:
    """An agency's action on a dossier at its agency (see schemas.ACTIONS)."""
    caller = Caller.from_context(context)
    if caller.kind != "agency":
        raise not_found()
    if not isinstance(action, str) or action not in schemas.ACTIONS:
        raise NotFound("unknown_action", "No such action.")
    command, schema = schemas.ACTIONS[action]
    args = schemas.load(schema, body or {})
    uploads = decode_uploads(args.pop("documents", []), "documents") if command == "result" else []
    if command in ("request_payment", "dispute_exemption"):
        args["request_id"] = str(uuid.uuid4())  # the charge's id at the payment service
    if command == "forward":
        # only when the dossier is visible to this agency do we ask the catalog anything
        app.visible(code, caller)
        target = catalog_call(catalog.get_agency, args.pop("to_agency_code"))
        if not target:
            raise InvalidInput("unknown_agency", "No such agency.",
                               [{"field": "to_agency_code", "message": "unknown agency"}])
        resolved = catalog_call(catalog.resolve_agency, target["code"]) or target
        args["to_agency"] = {"code": resolved["code"], "name": resolved.get("name"),
                             "level": resolved.get("level")}
    return full_view(app.execute(code, command, args, caller, event_context(context), uploads=uploads))


def applicant_action(app: Dossiers, context: dict[str, Any], code: str, command: str,
                     body: Any) -> dict[str, Any]:
    """The owner's supplement or withdrawal."""
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise not_found()
    schema = schemas.SupplementSchema if command == "supplement" else schemas.WithdrawSchema
    args = schemas.load(schema, body or {})
    uploads = decode_uploads(args.pop("documents", []), "documents") if command == "supplement" else []
    ids = args.pop("document_ids", []) if command == "supplement" else []
    state = app.execute(code, command, args, caller, event_context(context), uploads=uploads, document_ids=ids)
    return full_view(state)


def parse_as_of(as_of: Any) -> dt.datetime | None:
    if as_of in (None, ""):
        return None
    if isinstance(as_of, dt.datetime):
        moment = as_of
    else:
        try:
            moment = dt.datetime.fromisoformat(str(as_of))
        except ValueError:
            raise InvalidInput("invalid_as_of", "as_of must be an ISO 8601 time.",
                               [{"field": "as_of", "message": "not a time"}]) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def get(app: Dossiers, context: dict[str, Any], code: str, as_of: Any = None) -> dict[str, Any]:
    """The full view of a dossier the caller may see (as it was at ``as_of``, for audits)."""
    moment = parse_as_of(as_of)
    caller = Caller.from_context(context)
    view = full_view(app.visible(code, caller, moment))
    if caller.kind == "applicant":
        view["timeline"] = owner_timeline(view["timeline"])
    access.record(app, context, code, access.VIEW, as_of=moment)
    return view


def get_document(app: Dossiers, context: dict[str, Any], code: str, document_id: str) -> dict[str, Any]:
    """A document of the dossier, base64 (recorded in the access log when staff read it)."""
    ref, content = app.document(code, document_id, Caller.from_context(context))
    access.record(app, context, code, access.DOCUMENT, document_id=ref["id"])
    return {"document": ref, "content_base64": base64.b64encode(content).decode()}


def upload(app: Dossiers, context: dict[str, Any], code: str, name: str, content_type: str,
           content_base64: str, requirement: str | None = None) -> dict[str, Any]:
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise not_found()
    [doc] = decode_uploads([{"requirement": requirement, "name": name, "content_type": content_type,
                             "content_base64": content_base64}], "file")
    return app.upload(code, caller, doc)


def list_mine(app: Dossiers, context: dict[str, Any], status: Any, page: Any, page_size: Any,
              filters: dict[str, Any]) -> dict[str, Any]:
    """The caller's own dossiers (nothing for a caller that is not an applicant)."""
    caller = Caller.from_context(context)
    args = schemas.load(schemas.OwnerListSchema, {"status": status, "page": page, "page_size": page_size, **filters})
    if caller.kind != "applicant":
        return empty_page(args)
    return with_national_code(app.owner_list(
        caller.account_id or "", args["status"], args["page"], args["page_size"],
        procedure_code=args["procedure_code"], submitted_from=args["submitted_from"],
        submitted_to=args["submitted_to"]))


def agency_queue(app: Dossiers, context: dict[str, Any], status: Any, overdue: Any, page: Any,
                 page_size: Any) -> dict[str, Any]:
    """The caller's agency's queue (nothing for a caller that is not an agency)."""
    caller = Caller.from_context(context)
    args = schemas.load(schemas.AgencyQueueSchema, {"status": status, "overdue": overdue, "page": page,
                                                    "page_size": page_size})
    if caller.kind != "agency":
        return empty_page(args)
    return with_national_code(app.agency_queue(caller.agency_code or "", args["status"], args["overdue"],
                                               args["page"], args["page_size"]))
