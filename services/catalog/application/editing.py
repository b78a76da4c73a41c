"""Editors' changes to the catalog (procedures, agencies, life events). Each command validates
its input, writes the catalog tables and appends its event (the last write, same transaction)
to the catalog's log, which the outbox relay publishes on ``catalog.events``. (The event
store reads plain tuples, so its append gets its own cursor on the same connection and
transaction.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2.errors
from marshmallow import ValidationError

from portal_common.contracts.catalog import (
    AmendAgencyBody,
    AmendLifeEventBody,
    AmendProcedureBody,
    DissolveBody,
    NewAgencyBody,
    NewLifeEventBody,
    NewProcedureBody,
    RetireBody,
    WithdrawBody,
)
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from portal_common.eventstore.errors import ConcurrencyError
from portal_common.eventstore.events import EventContext, NewEvent
from services.catalog import places, queries
from services.catalog import repository as repo
from services.catalog.domain.agencies import changed_agency_fields, check_agency_unit, check_dissolution
from services.catalog.domain.codes import valid_code
from services.catalog.domain.life_events import amended_life_event, mistargeted_procedures, unoffered_procedures
from services.catalog.domain.procedures import amended, check_procedure
from services.catalog.domain.search import search_documents_text


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


def life_event_stream(event_id: str) -> str:
    return f"life-event-{event_id}"


@contextmanager
def _transaction(db: Database) -> Iterator[Any]:
    """A write transaction in which a concurrent editor's change (the same code inserted, the
    stream moved on) is a ``Conflict`` to retry, not a server error."""
    try:
        with db.transaction() as cur:
            yield cur
    except (psycopg2.errors.UniqueViolation, ConcurrencyError):
        raise Conflict("concurrent_change", "Another change to this entry was saved at the same time; "
                       "read it again and retry.") from None


def _check_next(cur: Any, doc: dict) -> None:
    """An inter-agency chain names a procedure of the catalog that is still offered."""
    nxt = doc.get("next_procedure")
    if not nxt:
        return
    if nxt["code"] == doc["code"]:
        raise InvalidInput("invalid_next_procedure", "A procedure cannot follow itself.")
    row = repo.procedure_row(cur, nxt["code"])
    if row is None or row["status"] == "withdrawn":
        raise InvalidInput("unknown_next_procedure", "The next procedure of the chain is not in the catalog.")


def _new_procedure(db: Database, store: EventStore, data: Any, ctx: EventContext, status: str) -> dict:
    doc = _load(NewProcedureBody, data)
    doc.update(version=1, status=status)
    check_procedure(doc)
    with _transaction(db) as cur:
        if not repo.field_exists(cur, doc["field"]):
            raise InvalidInput("unknown_field", "No such field (lĩnh vực).")
        _check_next(cur, doc)
        if repo.procedure_row(cur, doc["code"]) is not None:
            raise Conflict("procedure_exists", "A procedure with this code exists; amend it instead.")
        repo.save_procedure(cur, doc, search_documents_text(doc), new=True)
        if status == "published":
            repo.refresh_search_words(cur)
        event = "ProcedurePublished" if status == "published" else "ProcedureDrafted"
        store.append(procedure_stream(doc["code"]), 0, [NewEvent(event, doc)],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": doc["code"], "version": 1, "status": status}


def publish_procedure(db: Database, store: EventStore, data: Any, ctx: EventContext) -> dict:
    """A new procedure, published at once (version 1)."""
    return _new_procedure(db, store, data, ctx, "published")


def draft_procedure(db: Database, store: EventStore, data: Any, ctx: EventContext) -> dict:
    """A new procedure kept as a draft: not searchable, not offered for filing, until published."""
    return _new_procedure(db, store, data, ctx, "draft")


def publish_draft(db: Database, store: EventStore, code: Any, ctx: EventContext) -> dict:
    """Publish a draft as version 1 (``ProcedurePublished`` with the whole document)."""
    if not valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    with _transaction(db) as cur:
        row = repo.procedure_row(cur, code, for_update=True)
        if row is None:
            raise NotFound("procedure_not_found", "No procedure has this code.")
        if row["status"] != "draft":
            raise Conflict("not_a_draft", f"This procedure is {row['status']}, not a draft.")
        doc = dict(row["document"], status="published")
        repo.save_procedure(cur, doc, search_documents_text(doc), new=False)
        repo.refresh_search_words(cur)
        store.append(procedure_stream(code), None, [NewEvent("ProcedurePublished", doc)],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": code, "version": doc["version"], "status": "published"}


def amend_procedure(db: Database, store: EventStore, code: Any, changes: Any, ctx: EventContext) -> dict:
    """A published procedure gets a new version (the old ones stay readable); a draft is
    rewritten in place (no version of it was ever offered)."""
    if not valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    changes = _load(AmendProcedureBody, changes, partial=True)
    with _transaction(db) as cur:
        row = repo.procedure_row(cur, code, for_update=True)
        if row is None:
            raise NotFound("procedure_not_found", "No procedure has this code.")
        if "field" in changes and not repo.field_exists(cur, changes["field"]):
            raise InvalidInput("unknown_field", "No such field (lĩnh vực).")
        if changes.get("next_procedure"):
            _check_next(cur, dict(changes, code=code))
        current = dict(row["document"], status=row["status"])
        doc, changed = amended(current, changes)
        check_procedure(doc)
        repo.save_procedure(cur, doc, search_documents_text(doc), new=False)
        repo.refresh_search_words(cur)
        if doc["status"] == "draft":
            event = NewEvent("ProcedureDrafted", doc)
        else:
            event = NewEvent("ProcedureAmended", dict(doc, previous_version=current["version"], changed=changed))
        store.append(procedure_stream(code), None, [event],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": code, "version": doc["version"], "status": doc["status"], "changed": changed}


def withdraw_procedure(db: Database, store: EventStore, code: Any, reason: Any, ctx: EventContext) -> dict:
    """No longer offered for new filing (a draft withdrawn is simply abandoned); every
    version stays readable for the dossiers filed under it."""
    if not valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    reason = _load(WithdrawBody, {"reason": reason})["reason"]
    with _transaction(db) as cur:
        row = repo.procedure_row(cur, code, for_update=True)
        if row is None:
            raise NotFound("procedure_not_found", "No procedure has this code.")
        if row["status"] == "withdrawn":
            raise Conflict("procedure_withdrawn", "This procedure is already withdrawn.")
        doc = dict(row["document"], status="withdrawn")
        repo.save_procedure(cur, doc, search_documents_text(doc), new=False,
                            version_status="draft" if row["status"] == "draft" else None)
        repo.refresh_search_words(cur)
        store.append(procedure_stream(code), None,
                     [NewEvent("ProcedureWithdrawn", {"code": code, "version": doc["version"], "reason": reason})],
                     stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
    return {"code": code, "version": doc["version"], "status": "withdrawn"}


def _agency_payload(a: dict) -> dict:
    out = dict(a)
    if isinstance(out.get("dissolved_on"), dt.date):
        out["dissolved_on"] = out["dissolved_on"].isoformat()
    return out


def _place_agency(a: dict) -> dict:
    """Check the unit an agency serves against today's administrative units and take its
    official names from them (a ward alone names its province)."""
    province, ward = places.check_place(a.get("province_code"), a.get("ward_code"))
    check_agency_unit(a["level"], province, ward)
    province_name, ward_name = places.names_of(province, ward)
    return dict(a, province_code=province, ward_code=ward, province_name=province_name, ward_name=ward_name)


def register_agency(db: Database, store: EventStore, data: Any, ctx: EventContext) -> dict:
    a = _place_agency(_load(NewAgencyBody, data))
    a.update(status="active", successor=None, dissolved_on=None, version=1)
    with _transaction(db) as cur:
        if repo.agency(cur, a["code"]) is not None:
            raise Conflict("agency_exists", "An agency with this code exists.")
        if a["parent_code"] and repo.agency(cur, a["parent_code"]) is None:
            raise InvalidInput("unknown_parent", "The parent agency does not exist.")
        repo.insert_agency(cur, a)
        store.append(agency_stream(a["code"]), 0, [NewEvent("AgencyRegistered", _agency_payload(a))],
                     stream_type="agency", context=ctx, cursor=cur.connection.cursor())
    return _agency_payload(a)


def amend_agency(db: Database, store: EventStore, code: Any, changes: Any, ctx: EventContext) -> dict:
    if not valid_code(code):
        raise NotFound("agency_not_found", "No agency has this code.")
    changes = _load(AmendAgencyBody, changes, partial=True)
    with _transaction(db) as cur:
        current = repo.agency(cur, code, for_update=True)
        if current is None:
            raise NotFound("agency_not_found", "No agency has this code.")
        changed_agency_fields(current, changes)
        if changes.get("parent_code") and repo.agency(cur, changes["parent_code"]) is None:
            raise InvalidInput("unknown_parent", "The parent agency does not exist.")
        if changes.get("parent_code") == code:
            raise InvalidInput("invalid_parent", "An agency cannot be its own parent.")
        merged = dict(current, **changes)
        if changes.get("ward_code") is not None and "province_code" not in changes:
            merged["province_code"] = None  # the new ward names its province
        a = _place_agency(merged)
        changed = changed_agency_fields(current, {k: a[k] for k in a if k in changes
                                                         or k in ("province_name", "ward_name")})
        a["version"] = current["version"] + 1
        repo.update_agency(cur, a)
        store.append(agency_stream(code), None,
                     [NewEvent("AgencyAmended", dict(_agency_payload(a), changed=changed))],
                     stream_type="agency", context=ctx, cursor=cur.connection.cursor())
    return _agency_payload(a)


def dissolve_agency(db: Database, store: EventStore, code: Any, successor: Any, dissolved_on: Any,
                    reason: Any, ctx: EventContext) -> dict:
    """Dissolve an agency into its successor (today unless ``dissolved_on`` names the day)."""
    if not valid_code(code):
        raise NotFound("agency_not_found", "No agency has this code.")
    data = {"successor": successor, "reason": reason}
    if dissolved_on:
        data["dissolved_on"] = dissolved_on
    d = _load(DissolveBody, data)
    with _transaction(db) as cur:
        current = repo.agency(cur, code, for_update=True)
        if current is None:
            raise NotFound("agency_not_found", "No agency has this code.")
        if current["status"] == "dissolved":
            raise Conflict("agency_dissolved", "This agency is already dissolved.")
        exists = repo.agency(cur, d["successor"]) is not None
        final = check_dissolution(code, d["successor"], repo.successors(cur), exists)
        on = d.get("dissolved_on") or dt.date.today()
        a = dict(current, status="dissolved", successor=d["successor"], dissolved_on=on,
                 version=current["version"] + 1)
        repo.update_agency(cur, a)
        payload = {"code": code, "successor": d["successor"], "resolved_successor": final,
                   "dissolved_on": on.isoformat(), "reason": d["reason"]}
        store.append(agency_stream(code), None, [NewEvent("AgencyDissolved", payload)],
                     stream_type="agency", context=ctx, cursor=cur.connection.cursor())
    return _agency_payload(a)


def _check_life_event_procedures(cur: Any, codes: list[str], target: str) -> None:
    """A life event lists only procedures of the catalog that are not withdrawn, and only those
    meant for its kind of applicant."""
    statuses, targets = repo.procedure_statuses_and_targets(cur, codes)
    errors = unoffered_procedures(codes, statuses)
    if errors:
        raise InvalidInput("unknown_procedures", "Some procedures are not in the catalog or have been withdrawn.",
                           errors)
    errors = mistargeted_procedures(codes, targets, target)
    if errors:
        raise InvalidInput("procedure_target_mismatch",
                           "Some procedures are not meant for this life event's applicants.", errors)


def _append_life_event(store: EventStore, cur: Any, event: NewEvent, ctx: EventContext,
                       expected: int | None = None) -> None:
    store.append(life_event_stream(event.data["id"]), expected, [event], stream_type="life_event",
                 context=ctx, cursor=cur.connection.cursor())


def _life_event_by_id(cur: Any, event_id: Any) -> dict:
    """The stored life event, locked for a change."""
    row = repo.life_event_row(cur, event_id, for_update=True) if valid_code(event_id) else None
    if row is None:
        raise NotFound("life_event_not_found", "No life event has this id.")
    return row


def define_life_event(db: Database, store: EventStore, data: Any, ctx: EventContext) -> dict:
    """A new life event (version 1); answers it as ``get_life_event`` does."""
    doc = _load(NewLifeEventBody, data)
    doc.update(status="active", version=1)
    with _transaction(db) as cur:
        if repo.life_event_row(cur, doc["id"]) is not None:
            raise Conflict("life_event_exists", "A life event with this id exists; amend it instead.")
        _check_life_event_procedures(cur, doc["procedure_codes"], doc["target"])
        repo.save_life_event(cur, doc, new=True)
        _append_life_event(store, cur, NewEvent("LifeEventDefined", doc), ctx, expected=0)
        return queries.life_event_view(queries.life_event(cur, doc["id"]))


def amend_life_event(db: Database, store: EventStore, event_id: Any, changes: Any, ctx: EventContext) -> dict:
    """A new version of a life event; the procedures' ``life_events`` follow at once (same
    table). Answers the life event as ``get_life_event`` does, with what changed."""
    changes = _load(AmendLifeEventBody, changes, partial=True)
    with _transaction(db) as cur:
        current = _life_event_by_id(cur, event_id)
        doc, changed = amended_life_event(current, changes)
        if "procedure_codes" in changed or "target" in changed:
            _check_life_event_procedures(cur, doc["procedure_codes"], doc["target"])
        repo.save_life_event(cur, doc, new=False)
        _append_life_event(store, cur, NewEvent("LifeEventAmended", dict(doc, changed=changed)), ctx)
        return dict(queries.life_event_view(queries.life_event(cur, doc["id"])), changed=changed)


def retire_life_event(db: Database, store: EventStore, event_id: Any, reason: Any, ctx: EventContext) -> dict:
    """No longer offered for browsing (the public list, its page, the procedures' ``life_events``);
    the row stays, so the id is not reused for something else."""
    reason = _load(RetireBody, {"reason": reason})["reason"]
    with _transaction(db) as cur:
        current = _life_event_by_id(cur, event_id)
        if current["status"] == "retired":
            raise Conflict("life_event_retired", "This life event is already retired.")
        doc = dict(current, status="retired", version=current["version"] + 1)
        repo.save_life_event(cur, doc, new=False)
        _append_life_event(store, cur, NewEvent("LifeEventRetired", dict(doc, reason=reason)), ctx)
    return {"id": doc["id"], "version": doc["version"], "status": "retired"}
