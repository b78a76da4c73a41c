"""Filing a dossier from the ``submit`` RPC: validate the body, check it against the catalog,
answer a retried Idempotency-Key from the first filing, then file it (``Dossiers.submit``).

The catalog is asked over RPC before any transaction begins, so no database transaction
waits on another service. Filing a draft (application/drafts.py) runs the same checks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from nameko.exceptions import RemoteError, UnknownService

from portal_common.context import event_context
from portal_common.contracts.dossier import FilingSchema
from portal_common.errors import InvalidInput, NotFound, ServiceError, Unavailable
from services.dossier import schemas
from services.dossier.application.dossiers import Dossiers, max_document_bytes
from services.dossier.application.views import full_view
from services.dossier.domain import assurance, lifecycle
from services.dossier.domain.access import Caller
from services.dossier.domain.documents import Upload, check_upload, decode_base64
from services.dossier.domain.filing import filing_hash
from services.dossier.domain.lifecycle import DossierState

CLOSED_PROCEDURE_STATUSES = {"retired", "abolished", "inactive", "draft", "withdrawn"}


def decode_uploads(documents: list[dict[str, Any]], field: str) -> list[Upload]:
    """Documents sent inline (base64), decoded and checked (size, type, name)."""
    limit = max_document_bytes()
    return [check_upload(d.get("requirement"), d["name"], d["content_type"],
                         decode_base64(d["content_base64"], f"{field}.{i}.content_base64"),
                         f"{field}.{i}", max_bytes=limit)
            for i, d in enumerate(documents)]


def catalog_call(method, *args: Any, **kwargs: Any) -> Any:
    """A catalog RPC: None when it does not know the thing, Unavailable when it does not answer."""
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


def iso_dates(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in values.items()}


def request_hash(data: dict[str, Any], uploads: list[Upload]) -> str:
    """The hash of a validated filing (``FilingSchema`` output), as sent."""
    return filing_hash(data["procedure_code"], data["agency_code"], iso_dates(data["applicant"]), data["form"],
                       uploads, data.get("fee_exemptions") or None)


def submit(app: Dossiers, catalog: Any, context: dict[str, Any], filing: Any,
           idempotency_key: str | None) -> dict[str, Any]:
    """Check the filing against the catalog's procedure version, then file it."""
    caller = Caller.from_context(context)
    if caller.kind != "applicant":
        raise InvalidInput("not_an_applicant", "Only a citizen or a business files dossiers.")
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise InvalidInput("invalid_idempotency_key", "Idempotency-Key must be 1-200 printable characters.")
    data = schemas.load(FilingSchema, filing)
    uploads = decode_uploads(data["documents"], "documents")
    digest = request_hash(data, uploads)
    if idempotency_key:
        # a retry is answered from the first submission, whatever the catalog says today
        earlier = app.submitted_with(caller.account_id or "", idempotency_key, digest)
        if earlier is not None:
            return dict(full_view(earlier), created=False)
    state, created = file_checked(app, catalog, context, data, uploads, idempotency_key, digest)
    return dict(full_view(state), created=created)


def file_checked(app: Dossiers, catalog: Any, context: dict[str, Any], data: dict[str, Any],
                 uploads: list[Upload], idempotency_key: str | None = None, digest: str | None = None,
                 also: Any = None) -> tuple[DossierState, bool]:
    """File a validated filing (``FilingSchema`` output) once the catalog agrees with it.

    Raises InvalidInput listing every problem at once: missing required documents, documents
    the procedure does not ask for, an agency that does not serve the applicant's area.
    """
    caller = Caller.from_context(context)
    actor = (context or {}).get("actor") or {}
    applicant = iso_dates(data["applicant"])
    procedure = catalog_call(catalog.get_procedure, data["procedure_code"])
    if not procedure or procedure.get("status") in CLOSED_PROCEDURE_STATUSES:
        raise InvalidInput("unknown_procedure", "No such procedure is open for filing.",
                           [{"field": "procedure_code", "message": "unknown procedure"}])
    if procedure.get("online_level") == "none":
        raise InvalidInput("not_filed_online", "This procedure is filed at the agency's counter, not online.",
                           [{"field": "procedure_code", "message": "not an online public service"}])
    assurance.require_level(procedure, actor.get("assurance_level"))
    agencies = catalog_call(catalog.agencies_for, procedure["code"], province=applicant.get("province"),
                            ward=applicant.get("ward")) or []
    agency_code = data["agency_code"]
    if agency_code not in {a.get("code") for a in agencies}:
        resolved = catalog_call(catalog.resolve_agency, agency_code)
        if isinstance(resolved, dict) and resolved.get("code") in {a.get("code") for a in agencies}:
            agency_code = resolved["code"]  # addressed to a dissolved agency: its successor takes it
    problems = lifecycle.check_filing(procedure, agencies, agency_code, [u.requirement for u in uploads],
                                      applicant)
    problems += lifecycle.exemption_problems(list(procedure.get("fees") or []), data.get("fee_exemptions") or [])
    if problems:
        raise InvalidInput("filing_incomplete", "The filing does not meet the procedure's requirements.",
                           problems)
    agency = next(a for a in agencies if a.get("code") == agency_code)
    return app.submit(
        owner={"account_id": caller.account_id, "kind": actor.get("kind"), "subject": actor.get("subject")},
        applicant=applicant, form=data["form"],
        procedure={"code": procedure["code"], "version": procedure.get("version"),
                   "name": procedure.get("name") or procedure["code"],
                   "processing_days": int(procedure.get("processing_days") or 0)},
        agency={"code": agency["code"], "name": agency.get("name"), "level": agency.get("level")},
        uploads=uploads, idempotency_key=idempotency_key, context=event_context(context),
        request_hash=digest or request_hash(data, uploads), also=also,
        fees=list(procedure.get("fees") or []), fee_exemptions=list(data.get("fee_exemptions") or []),
    )
