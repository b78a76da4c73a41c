"""The access log: every read of a dossier by agency staff, for its owner to see.

Personal-data rules (Decree 13/2023) ask that access to a person's filed data be traceable,
so each successful read of a dossier's full view or download of one of its documents by an
officer or an agency system appends one row to ``access_log`` (append-only in the database,
see migrations/003). The row is written after the read and before the answer leaves: if it
cannot be written the RPC fails, so no read goes unrecorded. The owner's own reads are not
recorded (they are the data subject); refused reads (404) are not accesses and only show in
the request logs. Operators cannot read dossiers (``Caller`` makes them anonymous), so
nothing of theirs is logged here; they read the log itself, with the staff's account ids.

The owner sees the agency, the role and an opaque staff reference (a short hash of the
account id) instead of the person: enough for a complaint that an operator can trace with
the operator view, which shows both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from portal_common.errors import NotFound
from services.dossier import schemas
from services.dossier.domain import lifecycle
from services.dossier.domain.codes import looks_like_code, stream_id
from services.dossier.repository import Caller, DossierRepository, page_of

VIEW, DOCUMENT = "view", "document"
STAFF_KINDS = ("officer", "agency_system")
_COLUMNS = ("id, accessed_at, dossier_code, actor_kind, account_id, agency_code, access, "
            "document_id::text AS document_id, as_of, request_id")
_ORDER = "accessed_at DESC, id DESC"


def staff_ref(account_id: str) -> str:
    """An opaque, stable reference to a staff account: the same person shows the same
    reference on every dossier, but the citizen never learns the account id."""
    return hashlib.sha256(f"dossier-access:{account_id}".encode()).hexdigest()[:12]


def owner_timeline(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline as its owner sees it: staff named by agency, kind and ``staff_ref`` (as in
    the access log), never by account id."""
    out = []
    for entry in timeline:
        actor = entry.get("actor")
        if isinstance(actor, dict) and actor.get("kind") in (*STAFF_KINDS, "operator") and actor.get("id"):
            entry = {**entry, "actor": {"kind": actor["kind"], "agency_code": actor.get("agency_code"),
                                        "staff_ref": staff_ref(str(actor["id"]))}}
        out.append(entry)
    return out


def record(repo: DossierRepository, context: dict[str, Any] | None, code: str, access: str,
           document_id: str | None = None, as_of: dt.datetime | None = None) -> None:
    """Append one row for a read by agency staff (nothing for anyone else).

    Called after the read succeeded; raises when the row cannot be written, so the read
    fails with it.
    """
    caller = Caller.from_context(context)
    if caller.kind != "agency":
        return
    actor = (context or {}).get("actor") or {}
    kind = actor.get("kind") if actor.get("kind") in STAFF_KINDS else "officer"
    request_id = str((context or {}).get("request_id") or "")[:200] or None
    with repo.db.transaction(dict_rows=False) as cur:
        cur.execute("INSERT INTO access_log (dossier_code, actor_kind, account_id, agency_code, access, "
                    "document_id, as_of, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (code, kind, caller.account_id, caller.agency_code, access, document_id, as_of, request_id))


def _events(repo: DossierRepository, code: str) -> list[Any]:
    return repo.store.read_stream(stream_id(code)) if looks_like_code(code) else []


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


def _page(repo: DossierRepository, code: str, page: Any, page_size: Any) -> dict[str, Any]:
    args = schemas.load(schemas.AccessLogQuerySchema, {"page": page, "page_size": page_size})
    with repo.db.transaction() as cur:
        return page_of(cur, _COLUMNS, "access_log", "dossier_code = %s", [code], _ORDER, args["page"],
                       args["page_size"])


def _owner_entry(row: dict[str, Any], names: dict[str, str | None],
                 documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    doc = documents.get(row["document_id"] or "")
    return {"at": row["accessed_at"], "agency": {"code": row["agency_code"], "name": names.get(row["agency_code"])},
            "role": row["actor_kind"], "staff_ref": staff_ref(row["account_id"]), "access": row["access"],
            "document": None if row["document_id"] is None else {
                "id": row["document_id"], "name": doc.get("name") if doc else None},
            "as_of": row["as_of"]}


def owner_view(repo: DossierRepository, context: dict[str, Any] | None, code: str, page: Any = 1,
               page_size: Any = 20) -> dict[str, Any]:
    """The owner's page of the log, newest first; NotFound for anyone else (as an unknown code)."""
    caller = Caller.from_context(context)
    events = _events(repo, code)
    state = lifecycle.replay(events)
    if caller.kind != "applicant" or not state.exists or not caller.can_see(state):
        raise NotFound("dossier_not_found", "No dossier with this code.")
    result = _page(repo, code, page, page_size)
    names, documents = _agency_names(events), _documents(state)
    result["items"] = [_owner_entry(row, names, documents) for row in result["items"]]
    return result


def _operator_entry(row: dict[str, Any], names: dict[str, str | None],
                    documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {**_owner_entry(row, names, documents), "id": row["id"], "account_id": row["account_id"],
            "request_id": row["request_id"]}


def operator_view(repo: DossierRepository, context: dict[str, Any] | None, code: str, page: Any = 1,
                  page_size: Any = 20) -> dict[str, Any]:
    """The operator's page of the log, with the staff's account ids and the request ids."""
    actor = (context or {}).get("actor") or {}
    events = _events(repo, code)
    if actor.get("kind") != "operator" or not events:
        raise NotFound("dossier_not_found", "No dossier with this code.")
    result = _page(repo, code, page, page_size)
    names = _agency_names(events)  # no document names: they are the applicant's, operators read no dossier
    result["items"] = [_operator_entry(row, names, {}) for row in result["items"]]
    return result
