"""Endpoints of the local stand-ins of API.md (only when LOCAL_ADAPTERS is on).

They are declared only when the gateway starts with ``LOCAL_ADAPTERS`` on, so a real
deployment has no such paths at all (and identity refuses the calls too).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gateway.http.route import ApiCall, api, raw_body
from portal_common import config
from portal_common.contracts.identity import BhxhRecordBody, CarrierRecordBody, DevTokenBody, TrustedCaBody

TAGS = ("local stand-ins",)
ENABLED = config.env_bool("LOCAL_ADAPTERS", False, "gateway")


class OutboxQuery(Schema):
    phone = fields.String(load_default=None, validate=validate.Length(max=20))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DevRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    if ENABLED:

        @api("GET", "/api/v1/dev/sms-outbox", summary="Messages the local SMS stand-in 'sent' (newest first)",
             tags=TAGS, query=OutboxQuery)
        def dev_sms_outbox(self, call: ApiCall):
            return self.identity_rpc.dev_sms_outbox(call.query.get("phone"), call.query["limit"])

        @api("POST", "/api/v1/dev/carrier-records", summary="Add {phone, cccd} to the local carrier registry",
             tags=TAGS, body=CarrierRecordBody, status=201)
        def dev_carrier_record(self, call: ApiCall):
            return self.identity_rpc.dev_carrier_record(raw_body(call))

        @api("POST", "/api/v1/dev/bhxh-records", summary="Add a person to the local social-insurance registry",
             tags=TAGS, body=BhxhRecordBody, status=201)
        def dev_bhxh_record(self, call: ApiCall):
            return self.identity_rpc.dev_bhxh_record(raw_body(call))

        @api("POST", "/api/v1/dev/tokens", summary="An access token for an agency officer, agency system, "
             "editor or operator (no real staff account needed)", tags=TAGS, body=DevTokenBody, status=201)
        def dev_token(self, call: ApiCall):
            return self.identity_rpc.dev_token(raw_body(call), context=call.context())

        @api("POST", "/api/v1/dev/trusted-cas", summary="Trust a test certificate authority for SIM / USB "
             "token certificates", tags=TAGS, body=TrustedCaBody, status=201)
        def dev_trusted_ca(self, call: ApiCall):
            return self.identity_rpc.dev_trusted_ca(raw_body(call))
