"""Contracts of the dossier service: the events it publishes (exchange ``dossier.events``) and
the request bodies and status lists the gateway and the service both check.

Who caused each event travels in the envelope's ``actor`` (event metadata); why travels in the
payload's ``reason`` / ``note``. ``DossierSubmitted`` and ``DossierForwarded`` are
self-sufficient: an agency back office can take the dossier in from either alone
(procedure, agency, applicant, form, document ids and hashes, dates).

Every text field of a request body has a length limit and refuses control characters, so
nothing hostile reaches the log, where it would stay for good.
"""

from __future__ import annotations

import math
import unicodedata

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from portal_common.contracts import CATALOGUE
from portal_common.contracts.fields import Utf8Schema

PRODUCER = "dossier"
_TEXT = validate.Length(max=4000)

# A dossier's statuses, in the order of its life (the domain's state machine moves between them).
STATUSES = ("submitted", "received", "refused", "processing", "supplement_requested", "supplemented",
            "forwarded", "result_ready", "returned", "rejected", "withdrawn",
            # waiting for a fee or an obligation to be paid (the clock stops), and its expiry
            "awaiting_payment", "payment_expired")
DRAFT_STATUSES = ("open", "submitted", "discarded")


# -- request bodies: the same checks at the gateway (HTTP) and at the service (RPC) -------------


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

    requirement = Line(100, load_default=None, allow_none=True,
                       metadata={"description": "a required_documents id of the procedure"})
    name = Line(255, 1, required=True)
    content_type = Line(100, required=True, metadata={"description": "application/pdf, image/jpeg, image/png"})
    content_base64 = fields.String(required=True, validate=validate.Length(min=1, max=15_000_000))


class FilingDocumentSchema(InlineDocumentSchema):
    requirement = Line(100, 1, required=True, metadata={"description": "a required_documents id of the procedure"})


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


class FeeExemptionClaimSchema(Utf8Schema):
    """The applicant declares belonging to a group a fee exempts (one of the fee's ``exemptions``)."""

    fee_id = Line(100, 1, required=True, metadata={"description": "a fee id of the procedure version filed"})
    exemption = Line(500, 1, required=True, metadata={"description": "one of that fee's listed exemptions"})


def FeeExemptions(description: str) -> fields.List:  # noqa: N802 - a field factory
    """The declared exemptions of a filing or a draft: at most 20 ``{fee_id, exemption}``."""
    return fields.List(fields.Nested(FeeExemptionClaimSchema), load_default=list, validate=validate.Length(max=20),
                       metadata={"description": description})


def one_exemption_per_fee(data: dict) -> None:
    """Each fee is declared at most once (a filing's and a draft's rule alike)."""
    ids = [c["fee_id"] for c in data.get("fee_exemptions", [])]
    if len(ids) != len(set(ids)):
        raise ValidationError("Declare at most one exemption per fee.", "fee_exemptions")


class FilingSchema(Utf8Schema):
    """A dossier filing: the body of ``POST /api/v1/dossiers`` and of the ``submit`` RPC."""

    procedure_code = Line(50, 1, required=True)
    agency_code = Line(50, 1, required=True)
    applicant = fields.Nested(ApplicantSchema, required=True, metadata={
        "description": "full_name, id_number, date_of_birth, phone, email, address, province, ward"})
    form = FormField(load_default=dict)
    documents = fields.List(fields.Nested(FilingDocumentSchema), load_default=list,
                            validate=validate.Length(max=30))
    fee_exemptions = FeeExemptions(
        "fees the applicant is exempt from: [{fee_id, exemption}]; a declared fee is not requested unless the "
        "agency disputes it")

    @validates_schema
    def one_exemption_per_fee(self, data, **kwargs):
        one_exemption_per_fee(data)


# -- events -------------------------------------------------------------------------------------


# -- the applicant's other bodies and queries (gateway and service) --------------------


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
    fee_exemptions = FeeExemptions(
        "fees the applicant declares being exempt from, as in a filing: [{fee_id, exemption}], at most one per fee; "
        "checked against the procedure's fees when the draft is filed")
    version = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))

    @validates_schema
    def not_too_many_documents(self, data, **kwargs):
        if len(data.get("documents", [])) + len(data.get("document_ids", [])) > 30:
            raise ValidationError("A draft holds at most 30 documents.", "documents")

    @validates_schema
    def one_exemption_per_fee(self, data, **kwargs):
        one_exemption_per_fee(data)


class DraftListSchema(Utf8Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(DRAFT_STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class OptionalNoteSchema(Utf8Schema):
    note = Text(2000, load_default=None, allow_none=True)


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


class DocumentRefSchema(Schema):
    """A stored document: its id for download, its SHA-256 for integrity."""

    id = fields.String(required=True)
    requirement = fields.String(allow_none=True, load_default=None)
    name = fields.String(required=True, validate=validate.Length(max=255))
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True, validate=validate.Length(equal=64))


class ProcedureRefSchema(Schema):
    code = fields.String(required=True)
    version = fields.Raw(required=True, metadata={"description": "the catalog's procedure version"})
    name = fields.String(required=True)
    processing_days = fields.Integer(required=True)


class AgencyRefSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(allow_none=True, load_default=None)
    level = fields.String(allow_none=True, load_default=None)


class OwnerSchema(Schema):
    account_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["citizen", "business"]))
    subject = fields.String(allow_none=True, load_default=None, metadata={"description": "CCCD or tax code"})


class _Coded(Schema):
    code = fields.String(required=True)


class _AtAgency(_Coded):
    agency_code = fields.String(required=True)


@CATALOGUE.register("DossierSubmitted", 1, PRODUCER, "A dossier was filed and its code issued.")
class DossierSubmittedV1(_Coded):
    owner = fields.Nested(OwnerSchema, required=True)
    applicant = fields.Dict(required=True, metadata={"description": "who files: name, id, contact, province, ward"})
    form = fields.Dict(load_default=dict)
    procedure = fields.Nested(ProcedureRefSchema, required=True)
    agency = fields.Nested(AgencyRefSchema, required=True)
    documents = fields.List(fields.Nested(DocumentRefSchema), required=True)
    submitted_at = fields.DateTime(required=True)
    idempotency_key = fields.String(allow_none=True, load_default=None)


@CATALOGUE.register("DossierReceived", 1, PRODUCER, "The agency accepted the dossier and set the appointment date.")
class DossierReceivedV1(_AtAgency):
    received_at = fields.DateTime(required=True)
    processing_days = fields.Integer(required=True)
    appointment_date = fields.Date(required=True,
                                   metadata={"description": "reception + processing days, in working days"})
    note = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("DossierRefused", 1, PRODUCER, "The agency refused the dossier at reception.")
class DossierRefusedV1(_AtAgency):
    reason = fields.String(required=True, validate=_TEXT)


@CATALOGUE.register("DossierProcessingStarted", 1, PRODUCER, "The agency started (or resumed) processing.")
class DossierProcessingStartedV1(_AtAgency):
    note = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("SupplementRequested", 1, PRODUCER, "The agency asked the applicant for more documents.")
class SupplementRequestedV1(_AtAgency):
    missing = fields.List(fields.String(validate=_TEXT), required=True, validate=validate.Length(min=1))
    reason = fields.String(required=True, validate=_TEXT)
    due_date = fields.Date(allow_none=True)


@CATALOGUE.register("DossierSupplemented", 1, PRODUCER, "The applicant answered a supplement request.")
class DossierSupplementedV1(_Coded):
    documents = fields.List(fields.Nested(DocumentRefSchema), required=True)
    note = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("DossierForwarded", 1, PRODUCER, "The dossier was passed to another agency (inter-agency).")
class DossierForwardedV1(_Coded):
    from_agency_code = fields.String(required=True)
    to_agency = fields.Nested(AgencyRefSchema, required=True)
    reason = fields.String(required=True, validate=_TEXT)
    procedure = fields.Nested(ProcedureRefSchema, required=True)
    owner = fields.Nested(OwnerSchema, required=True)
    applicant = fields.Dict(required=True)
    form = fields.Dict(load_default=dict)
    documents = fields.List(fields.Nested(DocumentRefSchema), required=True)
    received_at = fields.DateTime(allow_none=True)
    appointment_date = fields.Date(allow_none=True)


@CATALOGUE.register("DossierPaused", 1, PRODUCER, "Processing paused: the clock stops.")
class DossierPausedV1(_AtAgency):
    reason = fields.String(required=True, validate=_TEXT)
    paused_on = fields.Date(required=True)


@CATALOGUE.register("DossierResumed", 1, PRODUCER,
                    "Processing resumed: the appointment moves by the paused working days.")
class DossierResumedV1(_AtAgency):
    resumed_on = fields.Date(required=True)
    paused_working_days = fields.Integer(required=True)
    appointment_date = fields.Date(allow_none=True)
    note = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("DeadlineExtended", 1, PRODUCER, "An overdue dossier got a new date, with an apology.")
class DeadlineExtendedV1(_AtAgency):
    previous_date = fields.Date(allow_none=True)
    new_date = fields.Date(required=True)
    reason = fields.String(required=True, validate=_TEXT,
                           metadata={"description": "the apology to the applicant: why, and the new date"})


@CATALOGUE.register("DossierResultReady", 1, PRODUCER, "The agency attached the result.")
class DossierResultReadyV1(_AtAgency):
    documents = fields.List(fields.Nested(DocumentRefSchema), required=True)
    note = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("DossierResultReturned", 1, PRODUCER, "The result was handed back to the applicant.")
class DossierResultReturnedV1(_AtAgency):
    returned_at = fields.DateTime(required=True)
    note = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("DossierRejected", 1, PRODUCER, "The agency rejected the dossier.")
class DossierRejectedV1(_AtAgency):
    reason = fields.String(required=True, validate=_TEXT)


@CATALOGUE.register("DossierWithdrawn", 1, PRODUCER, "The applicant withdrew the dossier.")
class DossierWithdrawnV1(_Coded):
    reason = fields.String(allow_none=True, validate=_TEXT)


@CATALOGUE.register("DossierBecameOverdue", 1, PRODUCER, "The dossier passed its appointment date unresolved.")
class DossierBecameOverdueV1(_AtAgency):
    appointment_date = fields.Date(required=True)
    detected_on = fields.Date(required=True)


class DossierFeeSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "VND"})
    basis = fields.String(load_default="fixed")
    copies = fields.Integer(load_default=1)


@CATALOGUE.register("DossierPaymentRequested", 1, PRODUCER,
                    "The dossier owes an amount: the procedure's fees at filing, or an obligation the agency "
                    "found during processing; when ``blocking`` the dossier waits and its clock stops.")
class DossierPaymentRequestedV1(_AtAgency):
    request_id = fields.UUID(required=True)
    agency_name = fields.String(allow_none=True, load_default=None)
    owner = fields.Nested(OwnerSchema, required=True)
    payer_name = fields.String(allow_none=True, load_default=None)
    amount = fields.Integer(required=True)
    fees = fields.List(fields.Nested(DossierFeeSchema), required=True)
    reason = fields.String(allow_none=True, validate=_TEXT)
    due_date = fields.Date(allow_none=True)
    blocking = fields.Boolean(required=True)
    stopped_on = fields.Date(allow_none=True, metadata={"description": "the day the clock stopped"})


@CATALOGUE.register("DossierPaymentReceived", 1, PRODUCER,
                    "A payment for the dossier succeeded: a waiting dossier moves on and its clock runs again.")
class DossierPaymentReceivedV1(_AtAgency):
    request_ids = fields.List(fields.UUID(), required=True)
    payment_id = fields.UUID(required=True)
    amount = fields.Integer(required=True)
    resumed_on = fields.Date(allow_none=True)
    paused_working_days = fields.Integer(allow_none=True)
    appointment_date = fields.Date(allow_none=True)


@CATALOGUE.register("DossierPaymentExpired", 1, PRODUCER,
                    "What the dossier owed was not paid by its due date; the agency decides what follows.")
class DossierPaymentExpiredV1(_AtAgency):
    request_ids = fields.List(fields.UUID(), required=True)
    due_date = fields.Date(allow_none=True)


@CATALOGUE.register("DossierReceiptAttached", 1, PRODUCER,
                    "The electronic receipt of a payment became one of the dossier's documents.")
class DossierReceiptAttachedV1(_Coded):
    payment_id = fields.UUID(required=True)
    receipt_no = fields.String(required=True)
    document = fields.Nested(DocumentRefSchema, required=True)


@CATALOGUE.register("FeeExemptionDeclared", 1, PRODUCER,
                    "At filing the applicant declared belonging to a group the fee exempts: the fee is not "
                    "requested (appended with DossierSubmitted, after it).")
class FeeExemptionDeclaredV1(_AtAgency):
    fee_id = fields.String(required=True)
    fee_name = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "VND the fee would have been"})
    exemption = fields.String(required=True, metadata={"description": "the group, as the catalog lists it"})
    declared_at = fields.DateTime(required=True)
    due = fields.String(load_default="before_reception", validate=validate.OneOf(
        ["before_reception", "with_reception", "with_result"]),
        metadata={"description": "when the fee would be due (a disputed one is requested as such)"})


@CATALOGUE.register("FeeExemptionDisputed", 1, PRODUCER,
                    "The agency holding the dossier disputed a declared exemption; the DossierPaymentRequested "
                    "that follows (``request_id``) asks for the fee.")
class FeeExemptionDisputedV1(_AtAgency):
    fee_id = fields.String(required=True)
    reason = fields.String(required=True, validate=_TEXT)
    disputed_at = fields.DateTime(required=True)
    request_id = fields.UUID(required=True, metadata={"description": "the DossierPaymentRequested that asks for it"})


# -- drafts (stream ``draft-<uuid>``): before a dossier has a code ----------------------


class _Draft(Schema):
    draft_id = fields.UUID(required=True)


@CATALOGUE.register("DossierDraftSaved", 1, PRODUCER,
                    "The applicant saved a draft filing (the whole draft as it is now; no code yet).")
class DossierDraftSavedV1(_Draft):
    owner = fields.Nested(OwnerSchema, required=True)
    procedure_code = fields.String(allow_none=True, load_default=None)
    agency_code = fields.String(allow_none=True, load_default=None)
    applicant = fields.Dict(load_default=dict)
    form = fields.Dict(load_default=dict)
    documents = fields.List(fields.Nested(DocumentRefSchema), required=True)


class DraftFeeExemptionSchema(Schema):
    fee_id = fields.String(required=True)
    exemption = fields.String(required=True)


@CATALOGUE.register("DossierDraftSaved", 2, PRODUCER,
                    "The applicant saved a draft filing (the whole draft as it is now, with the fee exemptions it "
                    "declares; no code yet). A v1 event declares none.")
class DossierDraftSavedV2(DossierDraftSavedV1):
    fee_exemptions = fields.List(fields.Nested(DraftFeeExemptionSchema), required=True, metadata={
        "description": "the fees the applicant declares being exempt from, [{fee_id, exemption}] (not yet checked "
                       "against the procedure: that happens when the draft is filed)"})


@CATALOGUE.register("DossierDraftSubmitted", 1, PRODUCER, "A draft was filed: it became the dossier with this code.")
class DossierDraftSubmittedV1(_Draft):
    code = fields.String(required=True)


@CATALOGUE.register("DossierDraftDiscarded", 1, PRODUCER, "The applicant discarded a draft.")
class DossierDraftDiscardedV1(_Draft):
    pass


# -- national status codes ----------------------------------------------------------------------

# The national portal's status codes, which back offices that sync dossiers with it use beside
# our own status: 1 new, 2 accepted, 3 not accepted, 4 processing, 5 supplement requested,
# 6 financial obligation requested, 7 withdrawn by the applicant, 8 stopped, 9 finished,
# 10 result returned. Every status a dossier can be in has exactly one (a test checks it).
NATIONAL_STATUS_CODES: dict[str, int] = {
    "submitted": 1,
    "received": 2,
    "refused": 3,
    "processing": 4,
    "supplement_requested": 5,
    "supplemented": 4,  # back in the agency's hands: processing resumes
    "forwarded": 4,  # another agency carries the processing on (liên thông)
    "awaiting_payment": 6,
    "payment_expired": 6,
    "result_ready": 9,
    "returned": 10,
    "rejected": 8,
    "withdrawn": 7,
}


def national_status_code(status: str | None) -> int | None:
    """The national portal's code of one of our statuses (None for no or an unknown status)."""
    return NATIONAL_STATUS_CODES.get(status) if status else None
