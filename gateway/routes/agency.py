"""Endpoints of the agency back-office part of API.md.

Scoped to the caller's agency (the ``agency`` claim of the token): a dossier that was never
routed to it answers 404, and only the agency currently holding a dossier may act on it.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from gateway.http.route import ApiCall, api
from gateway.routes.dossiers import STATUSES, ViewQuery, document_response

AGENCY = ("officer", "agency_system")
ACTIONS = ("receive", "refuse", "request-supplement", "start-processing", "pause", "resume", "extend",
           "forward", "result", "return", "reject")


class QueueQuery(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean()
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ActionBody(Schema):
    """What an action needs: reason (refuse, reject, pause, request-supplement, extend, forward),
    missing + due_date (request-supplement), new_date (extend), to_agency_code (forward),
    documents (result), note (any)."""

    class Meta:
        unknown = INCLUDE

    reason = fields.String()
    note = fields.String(allow_none=True)
    missing = fields.List(fields.String())
    due_date = fields.String()
    new_date = fields.String()
    to_agency_code = fields.String()
    documents = fields.List(fields.Dict())


class AgencyRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("GET", "/api/v1/agency/dossiers", summary="The agency's work queue, due soonest first",
         tags=("agency",), query=QueueQuery, auth=AGENCY)
    def agency_queue(self, call: ApiCall):
        q = call.query
        return self.dossier_rpc.agency_queue(call.context(), q.get("status"), q.get("overdue"), q["page"],
                                             q["page_size"])

    @api("GET", "/api/v1/agency/dossiers/<code>", summary="Full view of a dossier routed to this agency",
         tags=("agency",), query=ViewQuery, auth=AGENCY)
    def agency_dossier(self, call: ApiCall, code: str):
        as_of = call.query.get("as_of")
        return self.dossier_rpc.get(call.context(), code, as_of.isoformat() if as_of else None)

    @api("GET", "/api/v1/agency/dossiers/<code>/documents/<document_id>", summary="Download a dossier's document",
         tags=("agency",), auth=AGENCY)
    def agency_document(self, call: ApiCall, code: str, document_id: str):
        return document_response(self.dossier_rpc.get_document(call.context(), code, document_id))

    @api("POST", "/api/v1/agency/dossiers/<code>/<action>", summary="Act on a dossier: " + ", ".join(ACTIONS),
         tags=("agency",), body=ActionBody, auth=AGENCY, responses={409: "Not allowed in the current state"})
    def agency_action(self, call: ApiCall, code: str, action: str):
        return self.dossier_rpc.act(call.context(), code, action, call.body)
