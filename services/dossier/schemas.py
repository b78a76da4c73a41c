"""marshmallow schemas of the dossier service's RPC boundary that only the service needs.

The applicant's bodies and queries (filing, draft, supplement, withdrawal, lists) and the
status lists live in ``portal_common.contracts.dossier``, where the gateway checks the same
ones; the agency actions' bodies are here. ``load`` turns refusals into ``InvalidInput``.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from portal_common.contracts.dossier import (
    STATUSES,
    AccessLogQuerySchema,
    DraftListSchema,
    DraftSchema,
    FilingSchema,
    InlineDocumentSchema,
    Line,
    OptionalNoteSchema,
    OwnerListSchema,
    SupplementSchema,
    Text,
    WithdrawSchema,
)
from portal_common.contracts.fields import Utf8Schema
from portal_common.contracts.payment import DisputeExemptionBody, RequestPaymentBody
from portal_common.errors import InvalidInput


class ReasonSchema(Utf8Schema):
    reason = Text(2000, 1, required=True)


class RequestSupplementSchema(ReasonSchema):
    missing = fields.List(Line(500), required=True, validate=validate.Length(min=1, max=30))
    due_date = fields.Date(load_default=None, allow_none=True)


class ExtendSchema(ReasonSchema):
    new_date = fields.Date(required=True)


class ForwardSchema(ReasonSchema):
    to_agency_code = Line(50, 1, required=True)


class ResultSchema(OptionalNoteSchema):
    documents = fields.List(fields.Nested(InlineDocumentSchema), load_default=list,
                            validate=validate.Length(max=30))


# action (as in the URL) -> (command, body schema)
ACTIONS: dict[str, tuple[str, type[Schema]]] = {
    "receive": ("receive", OptionalNoteSchema),
    "refuse": ("refuse", ReasonSchema),
    "request-supplement": ("request_supplement", RequestSupplementSchema),
    "start-processing": ("start_processing", OptionalNoteSchema),
    "pause": ("pause", ReasonSchema),
    "resume": ("resume", OptionalNoteSchema),
    "extend": ("extend", ExtendSchema),
    "forward": ("forward", ForwardSchema),
    "result": ("result", ResultSchema),
    "return": ("return_result", OptionalNoteSchema),
    "reject": ("reject", ReasonSchema),
    "request-payment": ("request_payment", RequestPaymentBody),
    "dispute-exemption": ("dispute_exemption", DisputeExemptionBody),
}


class AgencyQueueSchema(Utf8Schema):
    """Filters of an agency's work queue."""

    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean(load_default=None, allow_none=True)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


#: one instance per schema: an instance builds its nested schemas on first use, which cost
#: more than the load itself when each call made a new one
_INSTANCES: dict[type[Schema], Schema] = {}


def load(schema: type[Schema], data: object) -> dict:
    """Validate RPC input, turning marshmallow's errors into InvalidInput with every field."""
    if not isinstance(data, dict):
        raise InvalidInput("validation_failed", "Expected an object.")
    instance = _INSTANCES.get(schema)
    if instance is None:
        instance = _INSTANCES[schema] = schema()
    try:
        return instance.load(data)
    except ValidationError as exc:
        raise InvalidInput("validation_failed", "Some fields are not valid.",
                           _flatten(exc.messages)) from None


def _flatten(messages, prefix: str = "") -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list):
        for m in messages:
            out += _flatten(m, prefix) if isinstance(m, dict | list) else [{"field": prefix, "message": str(m)}]
    else:
        out.append({"field": prefix, "message": str(messages)})
    return out


__all__ = ["AccessLogQuerySchema", "DraftListSchema", "DraftSchema", "FilingSchema", "OwnerListSchema",
           "SupplementSchema", "WithdrawSchema", "load"]
