"""Editors' changes to the catalog. Each command validates its input, writes the catalog
tables and appends its event (the last write, same transaction) to the catalog's log,
which the outbox relay publishes on ``catalog.events``. (The event store reads plain
tuples, so its append gets its own cursor on the same connection and transaction.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import ValidationError

from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent
from services.catalog import domain
from services.catalog import repository as repo
from services.catalog.schemas import (
    AgencyAmendInput,
    AgencyInput,
    DissolveInput,
    ProcedureAmendInput,
    ProcedureInput,
    WithdrawInput,
)


def _load(schema_cls, data: Any, partial: bool = False) -> dict:
    if not isinstance(data, dict):
        raise InvalidInput("validation_failed", "Expected an object.")
    try:
        return schema_cls().load(data, partial=partial)
    except ValidationError as exc:
        raise InvalidInput("validation_failed", "Some fields are not valid.",
                           [{"field": k, "messages": v} for k, v in exc.messages.items()]) from None


def procedure_stream(code: str) -> str:
    return f"procedure-{code}"


def agency_stream(code: str) -> str:
    return f"agency-{code}"


def publish_procedure(db: Database, store: EventStore, data: Any, ctx: EventContext) -> dict:
    doc = _load(ProcedureInput, data)
    doc.update(version=1, status="published")
    with db.transaction() as cur:
        if not repo.field_exists(cur, doc["field"]):
            raise InvalidInput("unknown_field", "No such field (lĩnh vực).")
        if repo.procedure_row(cur, doc["code"]) is not None:
            raise Conflict("procedure_exists", "A procedure with this code exists; amend it instead.")
        repo.save_procedure(cur, doc, domain.search_documents_text(doc), new=True)
        store.append(procedure_stream(doc["code"]), 0, [NewEvent("ProcedurePublished", doc)],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": doc["code"], "version": 1, "status": "published"}


def amend_procedure(db: Database, store: EventStore, code: Any, changes: Any, ctx: EventContext) -> dict:
    if not domain.valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    changes = _load(ProcedureAmendInput, changes, partial=True)
    with db.transaction() as cur:
        row = repo.procedure_row(cur, code, for_update=True)
        if row is None:
            raise NotFound("procedure_not_found", "No procedure has this code.")
        if "field" in changes and not repo.field_exists(cur, changes["field"]):
            raise InvalidInput("unknown_field", "No such field (lĩnh vực).")
        current = dict(row["document"], status=row["status"])
        doc, changed = domain.amended(current, changes)
        repo.save_procedure(cur, doc, domain.search_documents_text(doc), new=False)
        payload = dict(doc, previous_version=current["version"], changed=changed)
        store.append(procedure_stream(code), None, [NewEvent("ProcedureAmended", payload)],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": code, "version": doc["version"], "status": doc["status"], "changed": changed}


def withdraw_procedure(db: Database, store: EventStore, code: Any, data: Any, ctx: EventContext) -> dict:
    if not domain.valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    reason = _load(WithdrawInput, data or {})["reason"]
    with db.transaction() as cur:
        row = repo.procedure_row(cur, code, for_update=True)
        if row is None:
            raise NotFound("procedure_not_found", "No procedure has this code.")
        if row["status"] == "withdrawn":
            raise Conflict("procedure_withdrawn", "This procedure is already withdrawn.")
        doc = dict(row["document"], status="withdrawn")
        repo.save_procedure(cur, doc, domain.search_documents_text(doc), new=False)
        store.append(procedure_stream(code), None,
                     [NewEvent("ProcedureWithdrawn", {"code": code, "version": doc["version"], "reason": reason})],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": code, "version": doc["version"], "status": "withdrawn"}


def _agency_payload(a: dict) -> dict:
    out = dict(a)
    if isinstance(out.get("dissolved_on"), dt.date):
        out["dissolved_on"] = out["dissolved_on"].isoformat()
    return out


def register_agency(db: Database, store: EventStore, data: Any, ctx: EventContext) -> dict:
    a = _load(AgencyInput, data)
    a.update(status="active", successor=None, dissolved_on=None, version=1)
    with db.transaction() as cur:
        if repo.agency(cur, a["code"]) is not None:
            raise Conflict("agency_exists", "An agency with this code exists.")
        if a["parent_code"] and repo.agency(cur, a["parent_code"]) is None:
            raise InvalidInput("unknown_parent", "The parent agency does not exist.")
        repo.insert_agency(cur, a)
        store.append(agency_stream(a["code"]), 0, [NewEvent("AgencyRegistered", _agency_payload(a))],
                     stream_type="agency", context=ctx, cursor=cur.connection.cursor())
    return _agency_payload(a)


def amend_agency(db: Database, store: EventStore, code: Any, changes: Any, ctx: EventContext) -> dict:
    if not domain.valid_code(code):
        raise NotFound("agency_not_found", "No agency has this code.")
    changes = _load(AgencyAmendInput, changes, partial=True)
    with db.transaction() as cur:
        current = repo.agency(cur, code, for_update=True)
        if current is None:
            raise NotFound("agency_not_found", "No agency has this code.")
        changed = domain.changed_agency_fields(current, changes)
        if changes.get("parent_code") and repo.agency(cur, changes["parent_code"]) is None:
            raise InvalidInput("unknown_parent", "The parent agency does not exist.")
        a = dict(current, **changes, version=current["version"] + 1)
        repo.update_agency(cur, a)
        store.append(agency_stream(code), None,
                     [NewEvent("AgencyAmended", dict(_agency_payload(a), changed=changed))],
                     stream_type="agency", context=ctx, cursor=cur.connection.cursor())
    return _agency_payload(a)


def dissolve_agency(db: Database, store: EventStore, code: Any, data: Any, ctx: EventContext) -> dict:
    if not domain.valid_code(code):
        raise NotFound("agency_not_found", "No agency has this code.")
    d = _load(DissolveInput, data)
    with db.transaction() as cur:
        current = repo.agency(cur, code, for_update=True)
        if current is None:
            raise NotFound("agency_not_found", "No agency has this code.")
        if current["status"] == "dissolved":
            raise Conflict("agency_dissolved", "This agency is already dissolved.")
        successor = repo.agency(cur, d["successor"])
        final = domain.check_dissolution(code, d["successor"], repo.successors(cur), successor is not None)
        on = d.get("dissolved_on") or dt.date.today()
        a = dict(current, status="dissolved", successor=d["successor"], dissolved_on=on,
                 version=current["version"] + 1)
        repo.update_agency(cur, a)
        payload = {"code": code, "successor": d["successor"], "resolved_successor": final,
                   "dissolved_on": on.isoformat(), "reason": d["reason"]}
        store.append(agency_stream(code), None, [NewEvent("AgencyDissolved", payload)],
                     stream_type="agency", context=ctx, cursor=cur.connection.cursor())
    return _agency_payload(a)
