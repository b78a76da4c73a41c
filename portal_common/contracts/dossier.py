"""Events published by the dossier service (exchange ``dossier.events``).

Who caused each event travels in the envelope's ``actor`` (event metadata); why travels in the
payload's ``reason`` / ``note``. ``DossierSubmitted`` and ``DossierForwarded`` are
self-sufficient: an agency back office can take the dossier in from either alone
(procedure, agency, applicant, form, document ids and hashes, dates).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal_common.contracts import CATALOGUE

PRODUCER = "dossier"
_TEXT = validate.Length(max=4000)


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


@CATALOGUE.register("DossierDraftSubmitted", 1, PRODUCER, "A draft was filed: it became the dossier with this code.")
class DossierDraftSubmittedV1(_Draft):
    code = fields.String(required=True)


@CATALOGUE.register("DossierDraftDiscarded", 1, PRODUCER, "The applicant discarded a draft.")
class DossierDraftDiscardedV1(_Draft):
    pass
