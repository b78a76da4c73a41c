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


# -- agency subscriptions and the agency feed -----------------------------------------------

SUBSCRIPTION_CHANNELS = ("dossiers", "payments", "documents")
SUBSCRIPTION_STATES = ("active", "paused", "ended")


def _header_value(value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("control characters are not allowed")


class SubscriptionInput(Schema):
    """``POST /api/v1/agency/subscriptions``: checked by the gateway and again by the router.

    ``filters`` maps attributes every delivered event carries (``procedure_code``, ``field``,
    ``event_type``, ``status``, ``province_code``) to a value or a list of values; an event
    matches when each named attribute has one of the values; empty means all."""

    callback_url = fields.String(required=True, validate=[validate.Length(min=8, max=2000), no_control_characters])
    channels = fields.List(fields.String(validate=validate.OneOf(SUBSCRIPTION_CHANNELS)), required=True,
                           validate=validate.Length(min=1, max=3))
    filters = fields.Dict(keys=fields.String(), load_default=dict)
    auth_header = fields.String(load_default=None, allow_none=True,
                                validate=[validate.Length(min=1, max=2000), _header_value],
                                metadata={"description": "sent as the Authorization header of every callback"})


class FeedQuery(Schema):
    """``GET /api/v1/agency/events``: entries after ``after``, up to ``limit``, waiting up to
    ``wait`` seconds for the first one."""

    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    wait = fields.Float(load_default=0, validate=validate.Range(min=0, max=30))


class _Subscription(Schema):
    subscription_id = fields.UUID(required=True)
    agency_code = fields.String(required=True)


@CATALOGUE.register("SubscriptionCreated", 1, PRODUCER,
                    "An agency system subscribed a verified callback to channels of its dossiers' events.")
class SubscriptionCreatedV1(_Subscription):
    callback_url = fields.String(required=True)
    channels = fields.List(fields.String(), required=True)
    filters = fields.Dict(required=True)


@CATALOGUE.register("SubscriptionEnded", 1, PRODUCER, "An agency system ended a subscription.")
class SubscriptionEndedV1(_Subscription):
    pass


@CATALOGUE.register("SubscriptionPaused", 1, PRODUCER, "An operator paused a subscription's deliveries.")
class SubscriptionPausedV1(_Subscription):
    pass


@CATALOGUE.register("SubscriptionResumed", 1, PRODUCER, "An operator resumed a paused subscription.")
class SubscriptionResumedV1(_Subscription):
    pass


@CATALOGUE.register("SubscriptionRewound", 1, PRODUCER,
                    "An operator asked for a subscription's deliveries again from a feed position.")
class SubscriptionRewoundV1(_Subscription):
    from_position = fields.Integer(required=True)
    previous_position = fields.Integer(required=True)
