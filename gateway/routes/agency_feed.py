"""Endpoints of the agency subscriptions and feed part of API.md.

An agency system manages its own subscriptions (callbacks with channels and filters), reads
its events in order from a gap-free pull feed, and fetches the public keys that sign every
delivery. Everything is scoped to the caller's agency: another agency's subscription answers
404. The router does the work (``services.router.subscriptions``).
"""

from __future__ import annotations

import time

import eventlet
from marshmallow import Schema, fields

from gateway.http.route import ApiCall, api
from gateway.routes.agency import AGENCY, _agency
from portal_common.contracts.router import FeedQuery, SubscriptionInput

PUBLIC = None
POLL_S = 0.25  # how often a long poll looks at the feed again


class SubscriptionView(Schema):
    id = fields.String()
    agency_code = fields.String()
    callback_url = fields.String()
    channels = fields.List(fields.String())
    filters = fields.Dict()
    has_auth_header = fields.Boolean(metadata={"description": "an Authorization header is sent (never shown)"})
    state = fields.String(metadata={"description": "active, paused (by an operator) or ended"})
    position = fields.Integer(metadata={"description": "the last feed position handled"})
    attempts = fields.Integer(metadata={"description": "failed attempts of the entry being delivered"})
    next_attempt_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    failing_since = fields.String(allow_none=True)
    last_success_at = fields.String(allow_none=True)
    delivered = fields.Integer()
    dead_lettered = fields.Integer()
    created_at = fields.String()
    ended_at = fields.String(allow_none=True)


class SubscriptionList(Schema):
    items = fields.List(fields.Nested(SubscriptionView))


class FeedItem(Schema):
    position = fields.Integer()
    event_id = fields.String()
    event_type = fields.String()
    dossier_code = fields.String()
    status = fields.String(allow_none=True, metadata={"description": "the dossier's status after the event"})
    national_status_code = fields.Integer(allow_none=True, metadata={"description": "1 to 10, national portal"})
    channels = fields.List(fields.String())
    cloudevent = fields.Dict(metadata={"description": "the CloudEvent 1.0 a subscription would receive"})


class FeedPage(Schema):
    items = fields.List(fields.Nested(FeedItem))
    last_position = fields.Integer(metadata={"description": "pass it as `after` to read on"})


class Jwks(Schema):
    keys = fields.List(fields.Dict(), metadata={"description": "Ed25519 public keys (OKP JWKs with kid)"})


class AgencyFeedRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("POST", "/api/v1/agency/subscriptions", summary="Subscribe a verified callback to the agency's events",
         tags=("agency",), body=SubscriptionInput, response=SubscriptionView, status=201, auth=AGENCY,
         responses={422: "Bad channels or filters, or a callback URL that is refused or did not verify"},
         description="The callback must answer the CloudEvents webhook handshake (OPTIONS with "
                     "WebHook-Request-Origin → 2xx with WebHook-Allowed-Origin). Deliveries are CloudEvents "
                     "1.0 in structured JSON, signed in Portal-Signature-JWS.")
    def create_subscription(self, call: ApiCall):
        agency = _agency(call)
        return self.router_rpc.create_subscription(call.context(), agency, call.body)

    @api("GET", "/api/v1/agency/subscriptions", summary="The agency's subscriptions", tags=("agency",),
         response=SubscriptionList, auth=AGENCY)
    def list_subscriptions(self, call: ApiCall):
        return {"items": self.router_rpc.list_subscriptions(_agency(call))}

    @api("GET", "/api/v1/agency/subscriptions/<subscription_id>", summary="One of the agency's subscriptions",
         tags=("agency",), response=SubscriptionView, auth=AGENCY, responses={404: "Not this agency's"})
    def get_subscription(self, call: ApiCall, subscription_id: str):
        return self.router_rpc.get_subscription(_agency(call), subscription_id)

    @api("DELETE", "/api/v1/agency/subscriptions/<subscription_id>", summary="End a subscription",
         tags=("agency",), status=204, auth=AGENCY, responses={404: "Not this agency's"})
    def end_subscription(self, call: ApiCall, subscription_id: str):
        self.router_rpc.end_subscription(call.context(), _agency(call), subscription_id)
        return 204, None

    @api("GET", "/api/v1/agency/events", summary="The agency's events in order, gap-free, long-polling",
         tags=("agency",), query=FeedQuery, response=FeedPage, auth=AGENCY)
    def agency_events(self, call: ApiCall):
        agency = _agency(call)
        q = call.query
        deadline = time.monotonic() + q["wait"]
        while True:  # the waiting happens here, not in a router worker: a quick read per poll
            page = self.router_rpc.agency_events(agency, q["after"], q["limit"], 0)
            remaining = deadline - time.monotonic()
            if page["items"] or remaining <= 0:
                return page
            eventlet.sleep(min(POLL_S, remaining))

    @api("GET", "/api/v1/agency/delivery-keys", summary="JWKS of the Ed25519 keys that sign deliveries",
         tags=("agency",), response=Jwks, auth=PUBLIC,
         description="Current and, during a rotation, previous key; kid = RFC 7638 thumbprint.")
    def delivery_keys(self, call: ApiCall):
        return 200, self.router_rpc.delivery_keys(), {"Cache-Control": "public, max-age=300"}
