"""marshmallow schemas at the router's RPC boundary."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from portal_common.contracts.router import CHANNELS, DeliveriesQuery, no_control_characters

AGENCY_CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                              error="an agency code is 1-64 letters, digits, '_', '.', '-'")
# A route names the environment variable holding its secret, never the secret itself; the
# prefix keeps a route from pointing the signer at unrelated settings.
SECRET_REF = validate.Regexp(r"^AGENCY_SECRET_[A-Z0-9_]{1,64}$",
                             error="a secret reference is AGENCY_SECRET_<NAME>")


class RouteInput(Schema):
    agency_code = fields.String(required=True, validate=AGENCY_CODE)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    endpoint = fields.Url(allow_none=True, load_default=None, require_tld=False,
                          schemes={"http", "https"}, validate=[validate.Length(max=2000), no_control_characters])
    secret_ref = fields.String(allow_none=True, load_default=None, validate=SECRET_REF)
    active = fields.Boolean(load_default=True)

    @validates_schema
    def _http_needs_endpoint(self, data: dict, **_: object) -> None:
        if data.get("channel") == "http" and not data.get("endpoint"):
            raise ValidationError("an http route needs a callback URL", "endpoint")
        if data.get("channel") == "http" and not data.get("secret_ref"):
            raise ValidationError("an http route needs a secret reference", "secret_ref")


class AgencyCodeInput(Schema):
    agency_code = fields.String(required=True, validate=AGENCY_CODE)


class DeliveryIdInput(Schema):
    delivery_id = fields.UUID(required=True)


class DossierCodeInput(Schema):
    dossier_code = fields.String(required=True, validate=[validate.Length(min=1, max=64), no_control_characters])


class DeadLetterQuery(Schema):
    agency_code = fields.String(allow_none=True, load_default=None, validate=AGENCY_CODE)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AgencyDeliveriesQuery(DeliveriesQuery):
    agency_code = fields.String(required=True, validate=AGENCY_CODE)


class AcknowledgeInput(Schema):
    delivery_id = fields.UUID(required=True)
    agency_code = fields.String(required=True, validate=AGENCY_CODE)


class DeliveryOut(Schema):
    delivery_id = fields.String()
    dossier_code = fields.String()
    agency_code = fields.String()
    addressed_to = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    channel = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class RouteOut(Schema):
    agency_code = fields.String()
    channel = fields.String()
    endpoint = fields.String(allow_none=True)
    secret_ref = fields.String(allow_none=True)
    active = fields.Boolean()
    updated_at = fields.DateTime()
