"""What each RPC of the dossier service does, between the nameko entrypoint and the repository.

Kept apart from ``service.py`` so the entrypoints stay one line each, and apart from the
repository so the catalog look-ups (RPC) never happen inside a database transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from nameko.exceptions import RemoteError, UnknownService

from portal_common.context import event_context
from portal_common.errors import InvalidInput, NotFound, ServiceError, Unavailable
from services.dossier import schemas
from services.dossier.domain import lifecycle
from services.dossier.domain.documents import check_upload, decode_base64
from services.dossier.domain.lifecycle import DossierState
from services.dossier.repository import Caller, DossierRepository, max_document_bytes

CLOSED_PROCEDURE_STATUSES = {"retired", "abolished", "inactive", "draft", "withdrawn"}


def full_view(state: DossierState) -> dict[str, Any]:
    """The owner's (and handling agency's) view: everything, with the timeline."""
    return {
        "code": state.code, "status": state.status, "paused": state.paused, "overdue": state.overdue,
        "procedure": state.procedure,
        "agency": {"code": state.agency_code, "name": state.agency_name},
        "agencies": state.agencies, "owner": state.owner, "applicant": state.applicant, "form": state.form,
        "submitted_at": state.submitted_at, "received_at": state.received_at,
        "appointment_date": state.appointment_date.isoformat() if state.appointment_date else None,
        "supplement": state.supplement, "reason": state.reason, "closed_at": state.closed_at,
        "inputs": state.inputs, "outputs": state.outputs, "timeline": state.timeline,
        "version": state.version, "updated_at": state.updated_at,
    }


def _uploads(documents: list[dict[str, Any]], field: str) -> list:
    limit = max_document_bytes()
    return [check_upload(d.get("requirement"), d["name"], d["content_type"],
                         decode_base64(d["content_base64"], f"{field}.{i}.content_base64"),
                         f"{field}.{i}", max_bytes=limit)
            for i, d in enumerate(documents)]


def _catalog_call(method, *args: Any, **kwargs: Any) -> Any:
    try:
        return method(*args, **kwargs)
    except NotFound:
        return None
    except ServiceError:
        raise
    except (UnknownService, RemoteError) as exc:
        raise Unavailable("catalog_unavailable", "The procedure catalog did not answer.") from exc


def _valid_key(key: Any) -> bool:
    return isinstance(key, str) and 0 < len(key) <= 200 and key.isprintable()


def submit(repo: DossierRepository, catalog: Any, context: dict[str, Any], filing: Any,
           idempotency_key: str | None) -> dict[str, Any]:
    """Check the filing against the catalog's procedure version, then file it."""
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise InvalidInput("not_an_applicant", "Only a citizen or a business files dossiers.")
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise InvalidInput("invalid_idempotency_key", "Idempotency-Key must be 1-200 printable characters.")
    data = schemas.load(schemas.FilingSchema, filing)
    uploads = _uploads(data["documents"], "documents")
    request_hash = filing_hash(data, iso_dates(data["applicant"]), uploads)
    if idempotency_key:
        # a retry is answered from the first submission, whatever the catalog says today
        earlier = repo.submitted_with(caller.account_id or "", idempotency_key, request_hash)
        if earlier is not None:
            return dict(full_view(earlier), created=False)
    state, created = file_checked(repo, catalog, context, data, uploads, idempotency_key, request_hash)
    return dict(full_view(state), created=created)


def iso_dates(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in values.items()}


def file_checked(repo: DossierRepository, catalog: Any, context: dict[str, Any], data: dict[str, Any],
                 uploads: list, idempotency_key: str | None = None, request_hash: str | None = None,
                 also: Any = None) -> tuple[DossierState, bool]:
    """File a validated filing (``SubmitSchema`` output) once the catalog agrees with it.

    Raises InvalidInput listing every problem at once: missing required documents, documents
    the procedure does not ask for, an agency that does not serve the applicant's area.
    """
    caller = Caller.from_context(context)
    actor = (context or {}).get("actor") or {}
    applicant = iso_dates(data["applicant"])
    procedure = _catalog_call(catalog.get_procedure, data["procedure_code"])
    if not procedure or procedure.get("status") in CLOSED_PROCEDURE_STATUSES:
        raise InvalidInput("unknown_procedure", "No such procedure is open for filing.",
                           [{"field": "procedure_code", "message": "unknown procedure"}])
    if procedure.get("online_level") == "none":
        raise InvalidInput("not_filed_online", "This procedure is filed at the agency's counter, not online.",
                           [{"field": "procedure_code", "message": "not an online public service"}])
    agencies = _catalog_call(catalog.agencies_for, procedure["code"], province=applicant.get("province"),
                             ward=applicant.get("ward")) or []
    agency_code = data["agency_code"]
    if agency_code not in {a.get("code") for a in agencies}:
        resolved = _catalog_call(catalog.resolve_agency, agency_code)
        if isinstance(resolved, dict) and resolved.get("code") in {a.get("code") for a in agencies}:
            agency_code = resolved["code"]  # addressed to a dissolved agency: its successor takes it
    problems = lifecycle.check_filing(procedure, agencies, agency_code, [u.requirement for u in uploads],
                                      applicant)
    if problems:
        raise InvalidInput("filing_incomplete", "The filing does not meet the procedure's requirements.",
                           problems)
    agency = next(a for a in agencies if a.get("code") == agency_code)
    state, created = repo.submit(
        owner={"account_id": caller.account_id, "kind": actor.get("kind"), "subject": actor.get("subject")},
        applicant=applicant, form=data["form"],
        procedure={"code": procedure["code"], "version": procedure.get("version"),
                   "name": procedure.get("name") or procedure["code"],
                   "processing_days": int(procedure.get("processing_days") or 0)},
        agency={"code": agency["code"], "name": agency.get("name"), "level": agency.get("level")},
        uploads=uploads, idempotency_key=idempotency_key, context=event_context(context),
        request_hash=request_hash, also=also,
    )
    return state, created


def filing_hash(data: dict[str, Any], applicant: dict[str, Any], uploads: list) -> str:
    """What a retry must repeat for its Idempotency-Key to return the first dossier."""
    body = json.dumps({"procedure": data["procedure_code"], "agency": data["agency_code"], "applicant": applicant,
                       "form": data["form"],
                       "documents": [[u.requirement, u.name, u.content_type, u.sha256] for u in uploads]},
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def act(repo: DossierRepository, catalog: Any, context: dict[str, Any], code: str, action: str,
        body: Any) -> dict[str, Any]:
    """An agency's action on a dossier at its agency (see schemas.ACTIONS)."""
    caller = Caller.from_context(context)
    if caller.kind != "agency":
        raise NotFound("dossier_not_found", "No dossier with this code.")
    if not isinstance(action, str) or action not in schemas.ACTIONS:
        raise NotFound("unknown_action", "No such action.")
    command, schema = schemas.ACTIONS[action]
    args = schemas.load(schema, body or {})
    uploads = _uploads(args.pop("documents", []), "documents") if command == "result" else []
    if command == "forward":
        # only when the dossier is visible to this agency do we ask the catalog anything
        repo.visible(code, caller)
        target = _catalog_call(catalog.get_agency, args.pop("to_agency_code"))
        if not target:
            raise InvalidInput("unknown_agency", "No such agency.",
                               [{"field": "to_agency_code", "message": "unknown agency"}])
        resolved = _catalog_call(catalog.resolve_agency, target["code"]) or target
        args["to_agency"] = {"code": resolved["code"], "name": resolved.get("name"),
                             "level": resolved.get("level")}
    state = repo.execute(code, command, args, caller, event_context(context), uploads=uploads)
    return full_view(state)


def applicant_action(repo: DossierRepository, context: dict[str, Any], code: str, command: str,
                     body: Any) -> dict[str, Any]:
    """The owner's supplement or withdrawal."""
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise NotFound("dossier_not_found", "No dossier with this code.")
    schema = schemas.SupplementSchema if command == "supplement" else schemas.WithdrawSchema
    args = schemas.load(schema, body or {})
    uploads = _uploads(args.pop("documents", []), "documents") if command == "supplement" else []
    ids = args.pop("document_ids", []) if command == "supplement" else []
    state = repo.execute(code, command, args, caller, event_context(context), uploads=uploads,
                         document_ids=ids)
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


def upload(repo: DossierRepository, context: dict[str, Any], code: str, name: str, content_type: str,
           content_base64: str, requirement: str | None = None) -> dict[str, Any]:
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise NotFound("dossier_not_found", "No dossier with this code.")
    [doc] = _uploads([{"requirement": requirement, "name": name, "content_type": content_type,
                       "content_base64": content_base64}], "file")
    return repo.upload(code, caller, doc)


def list_mine(repo: DossierRepository, context: dict[str, Any], status: Any, page: Any, page_size: Any,
              filters: dict[str, Any]) -> dict[str, Any]:
    """The caller's own dossiers (nothing for a caller that is not an applicant)."""
    caller = Caller.from_context(context)
    args = schemas.load(schemas.OwnerListSchema, {"status": status, "page": page, "page_size": page_size, **filters})
    if caller.kind != "applicant":
        return {"items": [], "total": 0, "page": args["page"], "page_size": args["page_size"]}
    return repo.owner_list(caller.account_id or "", args["status"], args["page"], args["page_size"],
                           procedure_code=args["procedure_code"], submitted_from=args["submitted_from"],
                           submitted_to=args["submitted_to"])


def agency_queue(repo: DossierRepository, context: dict[str, Any], status: Any, overdue: Any, page: Any,
                 page_size: Any) -> dict[str, Any]:
    """The caller's agency's queue (nothing for a caller that is not an agency)."""
    caller = Caller.from_context(context)
    args = schemas.load(schemas.AgencyQueueSchema, {"status": status, "overdue": overdue, "page": page,
                                                    "page_size": page_size})
    if caller.kind != "agency":
        return {"items": [], "total": 0, "page": args["page"], "page_size": args["page_size"]}
    return repo.agency_queue(caller.agency_code or "", args["status"], args["overdue"], args["page"],
                             args["page_size"])
