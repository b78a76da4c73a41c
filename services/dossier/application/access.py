"""The access log: every read of a dossier by agency staff, for its owner to see.

Personal-data rules (Decree 13/2023) ask that access to a person's filed data be traceable,
so each successful read of a dossier's full view or download of one of its documents by an
officer or an agency system appends one row to the access log (append-only in the database,
see migrations/003). The row is written after the read and before the answer leaves: if it
cannot be written the RPC fails, so no read goes unrecorded. The owner's own reads are not
recorded (they are the data subject); refused reads (404) are not accesses and only show in
the request logs. Operators cannot read dossiers (``Caller`` makes them anonymous), so
nothing of theirs is logged here; they read the log itself, with the staff's account ids.

The owner sees the agency, the role and an opaque staff reference (a short hash of the
account id, ``domain.access.staff_ref``) instead of the person: enough for a complaint that an
operator can trace with the operator view, which shows both.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.dossier import schemas
from services.dossier.application.dossiers import Dossiers, not_found
from services.dossier.domain import lifecycle
from services.dossier.domain.access import STAFF_KINDS, Caller, staff_ref
from services.dossier.domain.codes import looks_like_code, stream_id

VIEW, DOCUMENT = "view", "document"


def record(app: Dossiers, context: dict[str, Any] | None, code: str, access: str,
           document_id: str | None = None, as_of: dt.datetime | None = None) -> None:
    """Append one row for a read by agency staff (nothing for anyone else).

    Called after the read succeeded; raises when the row cannot be written, so the read
    fails with it.
    """
    caller = Caller.from_context(context)
    if caller.kind != "agency":
        return
    actor = (context or {}).get("actor") or {}
    app.repository.record_access({
        "dossier_code": code, "actor_kind": actor.get("kind") if actor.get("kind") in STAFF_KINDS else "officer",
        "account_id": caller.account_id, "agency_code": caller.agency_code, "access": access,
        "document_id": document_id, "as_of": as_of,
        "request_id": str((context or {}).get("request_id") or "")[:200] or None})


def _events(app: Dossiers, code: str) -> list[Any]:
    return app.log.read_stream(stream_id(code)) if looks_like_code(code) else []


def _agency_names(events: list[Any]) -> dict[str, str | None]:
    """The agencies the dossier went to, by code, with the names its events recorded."""
    names: dict[str, str | None] = {}
    for event in events:
        if event.event_type == "DossierSubmitted":
            names[event.data["agency"]["code"]] = event.data["agency"].get("name")
        elif event.event_type == "DossierForwarded":
            names[event.data["to_agency"]["code"]] = event.data["to_agency"].get("name")
    return names


def _documents(state: lifecycle.DossierState) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in [*state.inputs, *state.outputs]}


def _page(app: Dossiers, code: str, page: Any, page_size: Any) -> dict[str, Any]:
    args = schemas.load(schemas.AccessLogQuerySchema, {"page": page, "page_size": page_size})
    return app.read_models.access_page(code, args["page"], args["page_size"])


def _owner_entry(row: dict[str, Any], names: dict[str, str | None],
                 documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    doc = documents.get(row["document_id"] or "")
    return {"at": row["accessed_at"], "agency": {"code": row["agency_code"], "name": names.get(row["agency_code"])},
            "role": row["actor_kind"], "staff_ref": staff_ref(row["account_id"]), "access": row["access"],
            "document": None if row["document_id"] is None else {
                "id": row["document_id"], "name": doc.get("name") if doc else None},
            "as_of": row["as_of"]}


def owner_view(app: Dossiers, context: dict[str, Any] | None, code: str, page: Any = 1,
               page_size: Any = 20) -> dict[str, Any]:
    """The owner's page of the log, newest first; NotFound for anyone else (as an unknown code)."""
    caller = Caller.from_context(context)
    events = _events(app, code)
    state = lifecycle.replay(events)
    if caller.kind != "applicant" or not state.exists or not caller.can_see(state):
        raise not_found()
    result = _page(app, code, page, page_size)
    names, documents = _agency_names(events), _documents(state)
    result["items"] = [_owner_entry(row, names, documents) for row in result["items"]]
    return result


def _operator_entry(row: dict[str, Any], names: dict[str, str | None],
                    documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {**_owner_entry(row, names, documents), "id": row["id"], "account_id": row["account_id"],
            "request_id": row["request_id"]}


def operator_view(app: Dossiers, context: dict[str, Any] | None, code: str, page: Any = 1,
                  page_size: Any = 20) -> dict[str, Any]:
    """The operator's page of the log, with the staff's account ids and the request ids."""
    actor = (context or {}).get("actor") or {}
    events = _events(app, code)
    if actor.get("kind") != "operator" or not events:
        raise not_found()
    result = _page(app, code, page, page_size)
    names = _agency_names(events)  # no document names: they are the applicant's, operators read no dossier
    result["items"] = [_operator_entry(row, names, {}) for row in result["items"]]
    return result
