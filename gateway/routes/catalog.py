"""Endpoints of the catalog part of API.md: procedures, agencies, life events, fields; and the
editors' endpoints that publish, amend and withdraw procedures, register, amend and dissolve
agencies, and define, amend and retire life events (role ``editor``)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gateway.http.route import ApiCall, api
from portal_common.contracts.catalog import (
    AGENCY_LEVELS,
    LEVELS,
    ONLINE_LEVELS,
    TARGETS,
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

TAGS = ("catalog",)
EDITOR = ("editor",)
_Q = validate.Length(max=200)
_FILTER = validate.Length(max=60)


class PageQuery(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ProcedureSearchQuery(PageQuery):
    q = fields.String(load_default=None, validate=_Q)
    field = fields.String(load_default=None, validate=_FILTER)
    target = fields.String(load_default=None, validate=validate.OneOf(TARGETS))
    level = fields.String(load_default=None, validate=validate.OneOf(LEVELS))
    online = fields.String(load_default=None, validate=validate.OneOf(ONLINE_LEVELS))
    agency = fields.String(load_default=None, validate=_FILTER)


class VersionQuery(Schema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1))


class PlaceQuery(Schema):
    province = fields.Integer(load_default=None, validate=validate.Range(min=1, max=999))
    ward = fields.Integer(load_default=None, validate=validate.Range(min=1, max=99999))


class LifeEventQuery(Schema):
    target = fields.String(load_default=None, validate=validate.OneOf(["citizen", "business"]))


class AgencySearchQuery(PageQuery):
    q = fields.String(load_default=None, validate=_Q)
    province = fields.Integer(load_default=None, validate=validate.Range(min=1, max=999))
    level = fields.String(load_default=None, validate=validate.OneOf(AGENCY_LEVELS))
    include_dissolved = fields.Boolean(load_default=False)


_NOT_FOUND = {404: "Unknown code", 422: "Invalid input"}


def _is_editor(call: ApiCall) -> bool:
    return call.principal is not None and call.principal.role == "editor"


class CatalogRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    # -- public --------------------------------------------------------------------------

    @api("GET", "/api/v1/procedures", summary="Search procedures (diacritics- and case-insensitive)",
         tags=TAGS, query=ProcedureSearchQuery, responses={422: "Invalid filter or page"})
    def search_procedures(self, call: ApiCall):
        return self.catalog_rpc.search(**call.query)

    @api("GET", "/api/v1/procedures/<code>", summary="One procedure (current or a given version)",
         tags=TAGS, query=VersionQuery, optional_auth=True, responses=_NOT_FOUND,
         description="Drafts are visible to editors only (send an editor's bearer token).")
    def get_procedure(self, call: ApiCall, code: str):
        return self.catalog_rpc.get_procedure(code, call.query.get("version"), _is_editor(call))

    @api("GET", "/api/v1/procedures/<code>/versions", summary="A procedure's version history",
         tags=TAGS, optional_auth=True, responses=_NOT_FOUND)
    def procedure_versions(self, call: ApiCall, code: str):
        return {"code": code, "versions": self.catalog_rpc.procedure_history(code, _is_editor(call))}

    @api("GET", "/api/v1/procedures/<code>/agencies",
         summary="The active agencies implementing a procedure for a province / ward",
         tags=TAGS, query=PlaceQuery, responses=_NOT_FOUND)
    def procedure_agencies(self, call: ApiCall, code: str):
        items = self.catalog_rpc.agencies_for(code, call.query.get("province"), call.query.get("ward"))
        return {"items": items, "total": len(items)}

    @api("GET", "/api/v1/life-events", summary="Life events (birth, marriage, starting a business ...)",
         tags=TAGS, query=LifeEventQuery)
    def life_events(self, call: ApiCall):
        return {"items": self.catalog_rpc.list_life_events(call.query.get("target"))}

    @api("GET", "/api/v1/life-events/<event_id>", summary="One life event and its procedures in order",
         tags=TAGS, responses=_NOT_FOUND)
    def life_event(self, call: ApiCall, event_id: str):
        return self.catalog_rpc.get_life_event(event_id)

    @api("GET", "/api/v1/fields", summary="Fields (lĩnh vực) and their procedure counts", tags=TAGS)
    def catalog_fields(self, call: ApiCall):
        return {"items": self.catalog_rpc.list_fields()}

    @api("GET", "/api/v1/provinces", summary="The 34 provinces (since 2025-07-01), for choosing a place",
         tags=TAGS)
    def provinces(self, call: ApiCall):
        items = self.catalog_rpc.list_provinces()
        return {"items": items, "total": len(items)}

    @api("GET", "/api/v1/provinces/<code>", summary="One province and its wards / communes", tags=TAGS,
         responses={404: "Unknown province"})
    def province(self, call: ApiCall, code: str):
        return self.catalog_rpc.get_province(code)

    @api("GET", "/api/v1/agencies", summary="Search agencies", tags=TAGS, query=AgencySearchQuery,
         responses={422: "Invalid filter or page"})
    def list_agencies(self, call: ApiCall):
        return self.catalog_rpc.list_agencies(**call.query)

    @api("GET", "/api/v1/agencies/<code>", summary="One agency (with its successor when dissolved)",
         tags=TAGS, responses=_NOT_FOUND)
    def get_agency(self, call: ApiCall, code: str):
        return self.catalog_rpc.get_agency(code)

    # -- editors -------------------------------------------------------------------------

    @api("POST", "/api/v1/procedures", summary="Publish a new procedure", tags=TAGS, body=NewProcedureBody,
         auth=EDITOR, status=201, responses={409: "Code exists", 422: "Invalid procedure"})
    def publish_procedure(self, call: ApiCall):
        return self.catalog_rpc.publish_procedure(call.body, context=call.context())

    @api("POST", "/api/v1/procedures/drafts", summary="Save a new procedure as a draft (not offered yet)",
         tags=TAGS, body=NewProcedureBody, auth=EDITOR, status=201,
         responses={409: "Code exists", 422: "Invalid procedure"})
    def draft_procedure(self, call: ApiCall):
        return self.catalog_rpc.draft_procedure(call.body, context=call.context())

    @api("POST", "/api/v1/procedures/<code>/publish", summary="Publish a draft procedure", tags=TAGS,
         auth=EDITOR, responses={404: "Unknown code", 409: "Not a draft"})
    def publish_draft(self, call: ApiCall, code: str):
        return self.catalog_rpc.publish_draft(code, context=call.context())

    @api("PUT", "/api/v1/procedures/<code>", summary="Amend a procedure (a new version)", tags=TAGS,
         body=AmendProcedureBody(partial=True), auth=EDITOR,
         responses={404: "Unknown code", 409: "Withdrawn", 422: "Invalid change"})
    def amend_procedure(self, call: ApiCall, code: str):
        return self.catalog_rpc.amend_procedure(code, call.body, context=call.context())

    @api("POST", "/api/v1/procedures/<code>/withdraw", summary="Withdraw a procedure from new filing",
         tags=TAGS, body=WithdrawBody, auth=EDITOR, responses={404: "Unknown code", 409: "Already withdrawn"})
    def withdraw_procedure(self, call: ApiCall, code: str):
        return self.catalog_rpc.withdraw_procedure(code, call.body["reason"], context=call.context())

    @api("POST", "/api/v1/agencies", summary="Register an agency", tags=TAGS, body=NewAgencyBody,
         auth=EDITOR, status=201, responses={409: "Code exists", 422: "Invalid agency"})
    def register_agency(self, call: ApiCall):
        return self.catalog_rpc.register_agency(call.body, context=call.context())

    @api("PUT", "/api/v1/agencies/<code>", summary="Amend an agency", tags=TAGS,
         body=AmendAgencyBody(partial=True), auth=EDITOR,
         responses={404: "Unknown code", 409: "Dissolved", 422: "Invalid change"})
    def amend_agency(self, call: ApiCall, code: str):
        return self.catalog_rpc.amend_agency(code, call.body, context=call.context())

    @api("POST", "/api/v1/agencies/<code>/dissolve", summary="Dissolve an agency, naming its successor",
         tags=TAGS, body=DissolveBody, auth=EDITOR,
         responses={404: "Unknown code or successor", 409: "Already dissolved", 422: "Invalid successor"})
    def dissolve_agency(self, call: ApiCall, code: str):
        body = call.body
        on = body.get("dissolved_on")
        return self.catalog_rpc.dissolve_agency(code, body["successor"], on.isoformat() if on else None,
                                                body.get("reason", ""), context=call.context())

    @api("POST", "/api/v1/life-events", summary="Define a life event and its procedures in order", tags=TAGS,
         body=NewLifeEventBody, auth=EDITOR, status=201,
         responses={409: "Id taken", 422: "Invalid life event or unknown procedures"})
    def define_life_event(self, call: ApiCall):
        return self.catalog_rpc.define_life_event(call.body, context=call.context())

    @api("PUT", "/api/v1/life-events/<event_id>", summary="Amend a life event (name, target, procedures, order)",
         tags=TAGS, body=AmendLifeEventBody(partial=True), auth=EDITOR,
         responses={404: "Unknown id", 409: "Retired", 422: "Invalid change or unknown procedures"})
    def amend_life_event(self, call: ApiCall, event_id: str):
        return self.catalog_rpc.amend_life_event(event_id, call.body, context=call.context())

    @api("POST", "/api/v1/life-events/<event_id>/retire", summary="Retire a life event from browsing",
         tags=TAGS, body=RetireBody, auth=EDITOR, responses={404: "Unknown id", 409: "Already retired"})
    def retire_life_event(self, call: ApiCall, event_id: str):
        return self.catalog_rpc.retire_life_event(event_id, call.body["reason"], context=call.context())
