"""marshmallow schemas of the dossier service's RPC boundary that only the service needs.

The filing body, its parts and the status lists live in ``portal_common.contracts.dossier``,
where the gateway checks the same ones; ``load`` turns refusals into ``InvalidInput``.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from portal_common.contracts.dossier import (
    DRAFT_STATUSES,
    STATUSES,
    ApplicantSchema,
    FilingDocumentSchema,
    FilingSchema,
    FormField,
    InlineDocumentSchema,
    Line,
    Text,
)
from portal_common.contracts.fields import Utf8Schema
from portal_common.errors import InvalidInput


class DraftApplicantSchema(ApplicantSchema):
    full_name = Line(200, load_default=None, allow_none=True)


class DraftSchema(Utf8Schema):
    """A draft as the applicant saves it: anything may still be missing; the checks run at filing.

    ``documents`` are new attachments; ``document_ids`` are those already attached to the
    draft that stay (the others are dropped from it); ``version``, when given, must be the
    version the client read (so two tabs do not overwrite each other silently).
    """

    procedure_code = Line(50, load_default=None, allow_none=True)
    agency_code = Line(50, load_default=None, allow_none=True)
    applicant = fields.Nested(DraftApplicantSchema, load_default=dict)
    form = FormField(load_default=dict)
    documents = fields.List(fields.Nested(FilingDocumentSchema), load_default=list,
                            validate=validate.Length(max=30))
    document_ids = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list,
                               validate=validate.Length(max=30))
    version = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))

    @validates_schema
    def not_too_many_documents(self, data, **kwargs):
        if len(data.get("documents", [])) + len(data.get("document_ids", [])) > 30:
            raise ValidationError("A draft holds at most 30 documents.", "documents")


class DraftListSchema(Utf8Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(DRAFT_STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ReasonSchema(Utf8Schema):
    reason = Text(2000, 1, required=True)


class OptionalNoteSchema(Utf8Schema):
    note = Text(2000, load_default=None, allow_none=True)


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


class SupplementSchema(OptionalNoteSchema):
    documents = fields.List(fields.Nested(InlineDocumentSchema), load_default=list,
                            validate=validate.Length(max=30))
    document_ids = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list,
                               validate=validate.Length(max=30))

    @validates_schema
    def something_attached(self, data, **kwargs):
        if not data.get("documents") and not data.get("document_ids") and not data.get("note"):
            raise ValidationError("Attach documents or write a note.", "documents")


class WithdrawSchema(Utf8Schema):
    reason = Text(2000, load_default=None, allow_none=True)


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
}


class AccessLogQuerySchema(Utf8Schema):
    """A page of a dossier's access log."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class OwnerListSchema(Utf8Schema):
    """Filters of the owner's list of dossiers."""

    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATUSES))
    procedure_code = Line(50, load_default=None, allow_none=True)
    submitted_from = fields.Date(load_default=None, allow_none=True)
    submitted_to = fields.Date(load_default=None, allow_none=True)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class AgencyQueueSchema(Utf8Schema):
    """Filters of an agency's work queue."""

    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean(load_default=None, allow_none=True)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


def load(schema: type[Schema], data: object) -> dict:
    """Validate RPC input, turning marshmallow's errors into InvalidInput with every field."""
    if not isinstance(data, dict):
        raise InvalidInput("validation_failed", "Expected an object.")
    try:
        return schema().load(data)
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


__all__ = ["FilingSchema", "load"]
