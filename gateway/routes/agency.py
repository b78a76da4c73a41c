"""Endpoints of the agency back-office part of API.md.

Scoped to the caller's agency (the ``agency`` claim of the token): a dossier that was never
routed to it answers 404, and only the agency currently holding a dossier may act on it. A
staff token that names no agency is refused (403). Beside the fixed paths, an agency system
reads its own intake (``/agency/deliveries``) and acknowledges what it took from its queue.
"""

from __future__ import annotations

import uuid

from marshmallow import INCLUDE, Schema, fields, validate

from gateway.http.route import ApiCall, api
from gateway.routes.dossiers import ViewQuery, document_response
from portal_common.contracts.dossier import STATUSES
from portal_common.contracts.router import DeliveriesQuery
from portal_common.errors import Forbidden, NotFound

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


class DeliveryView(Schema):
    delivery_id = fields.String()
    dossier_code = fields.String()
    agency_code = fields.String()
    addressed_to = fields.String(metadata={"description": "the agency the dossier named (before successors)"})
    event_id = fields.String()
    event_type = fields.String()
    channel = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    created_at = fields.String()
    sent_at = fields.String(allow_none=True)


class DeliveryList(Schema):
    items = fields.List(fields.Nested(DeliveryView))


class AckView(Schema):
    delivery_id = fields.String()
    status = fields.String()


def _agency(call: ApiCall) -> str:
    """The caller's agency; a staff token without one may see nothing."""
    code = call.principal.agency_code if call.principal else None
    if not code:
        raise Forbidden("no_agency", "This token names no agency.")
    return code


def _context(call: ApiCall) -> dict:
    _agency(call)
    return call.context()


class AgencyRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("GET", "/api/v1/agency/dossiers", summary="The agency's work queue, due soonest first",
         tags=("agency",), query=QueueQuery, auth=AGENCY)
    def agency_queue(self, call: ApiCall):
        q = call.query
        return self.dossier_rpc.agency_queue(_context(call), q.get("status"), q.get("overdue"), q["page"],
                                             q["page_size"])

    @api("GET", "/api/v1/agency/dossiers/<code>", summary="Full view of a dossier routed to this agency",
         tags=("agency",), query=ViewQuery, auth=AGENCY)
    def agency_dossier(self, call: ApiCall, code: str):
        as_of = call.query.get("as_of")
        return self.dossier_rpc.get(_context(call), code, as_of.isoformat() if as_of else None)

    @api("GET", "/api/v1/agency/dossiers/<code>/documents/<document_id>", summary="Download a dossier's document",
         tags=("agency",), auth=AGENCY)
    def agency_document(self, call: ApiCall, code: str, document_id: str):
        return document_response(self.dossier_rpc.get_document(_context(call), code, document_id))

    @api("POST", "/api/v1/agency/dossiers/<code>/<action>", summary="Act on a dossier: " + ", ".join(ACTIONS),
         tags=("agency",), body=ActionBody, auth=AGENCY, responses={409: "Not allowed in the current state"})
    def agency_action(self, call: ApiCall, code: str, action: str):
        return self.dossier_rpc.act(_context(call), code, action, call.body)

    @api("GET", "/api/v1/agency/deliveries", summary="What the router delivered to this agency, newest first",
         tags=("agency",), query=DeliveriesQuery, response=DeliveryList, auth=AGENCY)
    def agency_deliveries(self, call: ApiCall):
        q = call.query
        return {"items": self.router_rpc.agency_deliveries(_agency(call), q.get("status"), q.get("dossier_code"),
                                                           q["limit"])}

    @api("POST", "/api/v1/agency/deliveries/<delivery_id>/ack", summary="Confirm a delivery taken from the queue",
         tags=("agency",), response=AckView, auth=AGENCY, responses={404: "Not a delivery to this agency"})
    def agency_ack(self, call: ApiCall, delivery_id: str):
        agency = _agency(call)
        try:
            delivery = str(uuid.UUID(delivery_id))
        except ValueError:
            raise NotFound("delivery_not_found", "No such delivery for this agency.") from None
        return self.router_rpc.acknowledge(delivery, agency)
