"""Events published by the router service (exchange ``router.events``).

A delivery is one dossier event on its way to one agency back office; its stream is
``delivery-<delivery_id>``. The delivery id is derived from the dossier event id and the
agency, so a duplicate dossier message maps onto the same delivery and agency systems can
drop a second copy by that id. Routing-table changes are events of the stream
``route-<agency_code>``. No event carries an HMAC secret, only the name it is read from.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from portal_common.contracts import CATALOGUE

PRODUCER = "router"
CHANNELS = ("amqp", "http")
DELIVERY_STATUSES = ("pending", "sent", "acknowledged", "dead")


def no_control_characters(value: str) -> None:
    """PostgreSQL refuses NUL and no URL or code needs control characters."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("control characters are not allowed")


class DeliveriesQuery(Schema):
    """Which of its deliveries an agency lists: the gateway's query string and the router's
    arguments, checked the same way at both."""

    status = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(DELIVERY_STATUSES))
    dossier_code = fields.String(allow_none=True, load_default=None,
                                 validate=[validate.Length(min=1, max=64), no_control_characters])
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class _Delivery(Schema):
    delivery_id = fields.UUID(required=True)
    dossier_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    agency_code = fields.String(required=True, validate=validate.Length(min=1, max=64))


@CATALOGUE.register("DeliveryScheduled", 1, PRODUCER,
                    "A dossier event was routed to an agency and queued for delivery.")
class DeliveryScheduledV1(_Delivery):
    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    addressed_to = fields.String(required=True, metadata={"description": "agency named by the dossier"})


@CATALOGUE.register("DeliverySent", 1, PRODUCER,
                    "The delivery was handed over: confirmed by the broker into the agency queue, "
                    "or accepted by the agency's callback URL.")
class DeliverySentV1(_Delivery):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    attempt = fields.Integer(required=True)


@CATALOGUE.register("DeliveryAcknowledged", 1, PRODUCER,
                    "The agency system confirmed it took the delivery in.")
class DeliveryAcknowledgedV1(_Delivery):
    via = fields.String(required=True, metadata={"description": "http_2xx or agency_ack"})


@CATALOGUE.register("DeliveryAttemptFailed", 1, PRODUCER,
                    "One delivery attempt failed; the next one is scheduled.")
class DeliveryAttemptFailedV1(_Delivery):
    attempt = fields.Integer(required=True)
    error = fields.String(required=True, validate=validate.Length(max=500))
    next_attempt_at = fields.DateTime(required=True)


@CATALOGUE.register("DeliveryDeadLettered", 1, PRODUCER,
                    "The delivery failed its last allowed attempt and waits for an operator.")
class DeliveryDeadLetteredV1(_Delivery):
    attempts = fields.Integer(required=True)
    error = fields.String(required=True, validate=validate.Length(max=500))


@CATALOGUE.register("DeliveryRedelivered", 1, PRODUCER,
                    "An operator sent a dead-lettered delivery again (attempts start over).")
class DeliveryRedeliveredV1(_Delivery):
    previous_attempts = fields.Integer(required=True)


@CATALOGUE.register("RouteConfigured", 1, PRODUCER,
                    "An agency's delivery channel, endpoint or secret reference changed.")
class RouteConfiguredV1(Schema):
    agency_code = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    endpoint = fields.String(allow_none=True, load_default=None)
    secret_ref = fields.String(allow_none=True, load_default=None,
                               metadata={"description": "name of the variable holding the secret"})
    active = fields.Boolean(required=True)
