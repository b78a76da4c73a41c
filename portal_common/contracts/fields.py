"""Field shapes that recur across event payloads."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ActorSchema(Schema):
    """Who caused an event: an applicant, an agency officer or system, an editor, the system."""

    kind = fields.String(
        required=True,
        validate=validate.OneOf(
            ["citizen", "business", "officer", "agency_system", "editor", "operator", "system"]
        ),
    )
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    agency_code = fields.String(allow_none=True, load_default=None)


class EnvelopeSchema(Schema):
    """The body of every message on a ``<service>.events`` exchange.

    ``event_id`` is the deduplication key: a consumer that stored it has applied the event.
    """

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    schema_version = fields.Integer(required=True)
    stream_id = fields.String(required=True)
    stream_type = fields.String(required=True)
    stream_version = fields.Integer(required=True)
    position = fields.Integer(required=True, metadata={"description": "global position in the producer's log"})
    occurred_at = fields.DateTime(required=True)
    recorded_at = fields.DateTime(required=True)
    correlation_id = fields.String(allow_none=True)
    causation_id = fields.String(allow_none=True)
    actor = fields.Nested(ActorSchema, allow_none=True)
    data = fields.Dict(required=True, metadata={"description": "the payload, per the event's schema"})
