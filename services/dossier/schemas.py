"""marshmallow schemas at the dossier service's RPC boundary (and reused by the gateway).

Every text field has a length limit and refuses control characters, so nothing hostile
reaches the log, where it would stay for good.
"""

from __future__ import annotations

import math
import unicodedata

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from portal_common.contracts.fields import Utf8Schema
from portal_common.errors import InvalidInput
from services.dossier.domain.drafts import DRAFT_STATUSES
from services.dossier.domain.lifecycle import STATUSES


def _no_control(value: str) -> None:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValidationError("Control characters are not allowed.")


def _line(value: str) -> None:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("Control characters are not allowed.")


def Line(max_len: int = 200, min_len: int = 0, **kw) -> fields.String:  # noqa: N802 - a field factory
    """One line of text: no control characters at all."""
    return fields.String(validate=[validate.Length(min=min_len, max=max_len), _line], **kw)


def Text(max_len: int = 4000, min_len: int = 0, **kw) -> fields.String:  # noqa: N802 - a field factory
    """Free text: new lines and tabs allowed, other control characters not."""
    return fields.String(validate=[validate.Length(min=min_len, max=max_len), _no_control], **kw)


class ApplicantSchema(Utf8Schema):
    """Who the dossier is for; province / ward decide which agencies may take it."""

    class Meta:
        unknown = EXCLUDE

    full_name = Line(200, 1, required=True)
    id_number = Line(20, load_default=None, allow_none=True)
    date_of_birth = fields.Date(load_default=None, allow_none=True)
    phone = Line(20, load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=200))
    address = Line(500, load_default=None, allow_none=True)
    province = Line(100, load_default=None, allow_none=True)
    ward = Line(100, load_default=None, allow_none=True)


class InlineDocumentSchema(Utf8Schema):
    """A document sent inside a JSON body (base64); ``requirement`` names what it answers."""

    requirement = Line(100, load_default=None, allow_none=True)
    name = Line(255, 1, required=True)
    content_type = Line(100, required=True)
    content_base64 = fields.String(required=True, validate=validate.Length(min=1, max=15_000_000))


class FilingDocumentSchema(InlineDocumentSchema):
    requirement = Line(100, 1, required=True)


class FormField(fields.Dict):
    """The procedure's own form: a flat object of short values."""

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(result) > 100:
            raise ValidationError("At most 100 form fields.")
        for key, item in result.items():
            if not isinstance(key, str) or len(key) > 100:
                raise ValidationError("Form field names are text of at most 100 characters.")
            _line(key)
            if isinstance(item, str):
                if len(item) > 4000:
                    raise ValidationError(f"{key}: at most 4000 characters.")
                _no_control(item)
            elif item is not None and not isinstance(item, bool | int | float):
                raise ValidationError(f"{key}: only text, numbers, booleans or null.")
            elif isinstance(item, float) and not math.isfinite(item):
                raise ValidationError(f"{key}: numbers must be finite.")
        return result


class SubmitSchema(Utf8Schema):
    procedure_code = Line(50, 1, required=True)
    agency_code = Line(50, 1, required=True)
    applicant = fields.Nested(ApplicantSchema, required=True)
    form = FormField(load_default=dict)
    documents = fields.List(fields.Nested(FilingDocumentSchema), load_default=list,
                            validate=validate.Length(max=30))


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
