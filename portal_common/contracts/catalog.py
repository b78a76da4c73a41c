"""Events published by the catalog service (exchange ``catalog.events``).

Payloads are self-sufficient: ``ProcedurePublished`` / ``ProcedureAmended`` carry the whole
procedure version (processing time, fees, documents, agency kinds, next procedure in an
inter-agency chain), ``AgencyRegistered`` / ``AgencyAmended`` the whole agency, and
``AgencyDissolved`` the successor, and ``LifeEventDefined`` / ``LifeEventAmended`` /
``LifeEventRetired`` the whole life event (its procedures in order), so the dossier service and
the router keep what they need from the events alone. The document schemas here are also the
catalog's input shapes.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates, validates_schema
from nameko.exceptions import MethodNotFound

from portal_common.contracts import CATALOGUE

log = logging.getLogger(__name__)

PRODUCER = "catalog"

CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$", error="Not a valid code.")
TARGETS = ("citizen", "business", "both")
LIFE_EVENT_TARGETS = ("citizen", "business")
SLUG = [validate.Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$",
                        error="A life event id is lower-case letters and digits joined by hyphens, like khai-sinh."),
        validate.Length(min=1, max=40)]
LEVELS = ("central", "province", "commune")
AGENCY_LEVELS = ("central", "province", "district", "commune")  # district: dissolved 2025-07-01
ONLINE_LEVELS = ("full", "partial", "none")


def _printable(multiline: bool = False):
    """Refuse control characters (and bidirectional overrides, which disguise text); long
    texts may keep line breaks and tabs."""
    allowed = {"\n", "\r", "\t"} if multiline else set()

    def check(value: str) -> None:
        for ch in value:
            if ch not in allowed and (unicodedata.category(ch) == "Cc" or ch in _BIDI):
                raise ValidationError("Control characters are not allowed.")
    return check


_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE = _printable()


def _short(max_len: int, min_len: int = 0) -> list:
    return [validate.Length(min=min_len, max=max_len), _LINE]


_NAME = _short(500, 1)
_TEXT = [validate.Length(max=4000), _printable(multiline=True)]
KIND = validate.Regexp(r"^(central|province|district|commune)_[a-z_]{1,80}$",
                       error="An agency kind is its level and a lower-case name, like province_justice.")


class RequiredDocumentSchema(Schema):
    """One component of the dossier (thành phần hồ sơ)."""

    id = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=_NAME)
    mandatory = fields.Boolean(load_default=True)
    original_or_copy = fields.String(load_default="copy",
                                     validate=validate.OneOf(["original", "copy", "either"]))
    count = fields.Integer(load_default=1, validate=validate.Range(min=1, max=20))
    form_template = fields.String(allow_none=True, load_default=None, validate=_short(200))


FEE_BASES = ("fixed", "per_copy")
FEE_DUE = ("before_reception", "with_reception", "with_result")


class FeeSchema(Schema):
    """One fee or charge (lệ phí, phí) of a procedure version, in VND.

    ``amount`` and ``amount_vnd`` are the same figure (the older name stays accepted); ``due``
    says when it is paid: ``before_reception`` holds the dossier until paid; ``with_reception``
    and ``with_result`` are owed without holding it. ``exemptions`` name who pays nothing
    (declared by the applicant, checked by the agency).
    """

    id = fields.String(load_default=None, allow_none=True, validate=CODE,
                       metadata={"description": "stable within the procedure; fee1, fee2... when not given"})
    name = fields.String(required=True, validate=_NAME)
    amount = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=10**12))
    amount_vnd = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=10**12))
    basis = fields.String(load_default="fixed", validate=validate.OneOf(FEE_BASES))
    due = fields.String(load_default="before_reception", validate=validate.OneOf(FEE_DUE))
    exemptions = fields.List(fields.String(validate=_NAME), load_default=list, validate=validate.Length(max=20))
    legal_basis = fields.String(load_default=None, allow_none=True, validate=_NAME)
    illustrative = fields.Boolean(load_default=None, allow_none=True,
                                  metadata={"description": "amount not taken from the law"})

    @validates_schema
    def _one_amount(self, data: dict, **_: object) -> None:
        given = {data.get("amount"), data.get("amount_vnd")} - {None}
        if not given:
            raise ValidationError("State the fee's amount in VND.", "amount")
        if len(given) > 1:
            raise ValidationError("amount and amount_vnd differ.", "amount")

    @post_load
    def _both_names(self, data: dict, **_: object) -> dict:
        data["amount"] = data["amount_vnd"] = data["amount"] if data.get("amount") is not None else data["amount_vnd"]
        return data


def fee_view(fees: list[dict] | None, illustrative: bool = False) -> list[dict]:
    """A procedure version's fees as callers see them: each with an id, ``amount`` (VND) and
    when it is due, whatever the stored version left out (versions stored before fees had them)."""
    out = []
    for i, fee in enumerate(fees or []):
        amount = fee.get("amount") if fee.get("amount") is not None else fee.get("amount_vnd")
        out.append({**fee, "id": fee.get("id") or f"fee{i + 1}", "amount": amount, "amount_vnd": amount,
                    "basis": fee.get("basis") or "fixed", "due": fee.get("due") or "before_reception",
                    "exemptions": list(fee.get("exemptions") or []), "legal_basis": fee.get("legal_basis"),
                    "illustrative": illustrative if fee.get("illustrative") is None else fee["illustrative"]})
    return out


class NextProcedureSchema(Schema):
    """The procedure that follows in an inter-agency (liên thông) chain, and who does it."""

    code = fields.String(required=True, validate=CODE)
    agency_kind = fields.String(required=True, validate=KIND)


class ProcedureBodySchema(Schema):
    """What an editor states about a procedure (everything but code, version and status)."""

    name = fields.String(required=True, validate=_NAME)
    field = fields.String(required=True, validate=_short(60, 1))
    target = fields.String(required=True, validate=validate.OneOf(TARGETS))
    levels = fields.List(fields.String(validate=validate.OneOf(LEVELS)), required=True,
                         validate=validate.Length(min=1, max=3))
    agency_kinds = fields.List(fields.String(validate=KIND), required=True,
                               validate=validate.Length(min=1, max=20))
    processing_days = fields.Integer(required=True, validate=validate.Range(min=0, max=365))
    online_level = fields.String(required=True, validate=validate.OneOf(ONLINE_LEVELS))
    required_documents = fields.List(fields.Nested(RequiredDocumentSchema), load_default=list,
                                     validate=validate.Length(max=50))
    fees = fields.List(fields.Nested(FeeSchema), load_default=list, validate=validate.Length(max=20))
    result_documents = fields.List(fields.String(validate=_NAME), load_default=list,
                                   validate=validate.Length(max=20))
    legal_bases = fields.List(fields.String(validate=_NAME), load_default=list,
                              validate=validate.Length(max=30))
    description = fields.String(load_default="", validate=_TEXT)
    next_procedure = fields.Nested(NextProcedureSchema, allow_none=True, load_default=None)
    illustrative = fields.Boolean(load_default=False,
                                  metadata={"description": "values not taken from the national database"})
    min_assurance_level = fields.Integer(
        load_default=None, allow_none=True, validate=validate.OneOf([1, 2]),
        metadata={"description": "the weakest VNeID assurance level (1 or 2, Decree 69/2024) a filing needs; "
                                 "null: any signed-in applicant"})


    @validates("required_documents")
    def _unique_document_ids(self, value: list, **_: object) -> None:
        ids = [d["id"] for d in value]
        if len(ids) != len(set(ids)):
            raise ValidationError("Each required document needs its own id (dossiers refer to it).")


class _EditorInput(Schema):
    """What an editor sends: a field the schema does not know is refused, not dropped."""

    class Meta:
        unknown = RAISE


class _Reason(_EditorInput):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=4000), _printable(True)])


class WithdrawalSchema(_Reason):
    """An editor's withdrawal of a procedure: why."""


class DissolutionSchema(_EditorInput):
    """An editor's dissolution of an agency: who takes over, from when, why."""

    successor = fields.String(required=True, validate=CODE)
    dissolved_on = fields.Date(load_default=None)
    reason = fields.String(load_default="", validate=_TEXT)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class LifeEventBodySchema(Schema):
    """What an editor states about a life event (everything but id, status and version): its
    procedures in the order a person goes through them."""

    name = fields.String(required=True, validate=[*_NAME, _not_blank])
    target = fields.String(required=True, validate=validate.OneOf(LIFE_EVENT_TARGETS))
    description = fields.String(load_default="", validate=_TEXT)
    procedure_codes = fields.List(fields.String(validate=CODE), required=True,
                                  validate=validate.Length(min=1, max=50),
                                  metadata={"description": "procedure codes, in the order they are done"})

    @validates("procedure_codes")
    def _unique_procedures(self, value: list, **_: object) -> None:
        if len(value) != len(set(value)):
            raise ValidationError("Each procedure is listed once.")


class RetirementSchema(_Reason):
    """An editor's retirement of a life event: why."""


class ProcedureSchema(ProcedureBodySchema):
    """One version of a procedure, as stored and as published."""

    code = fields.String(required=True, validate=CODE)
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    status = fields.String(required=True, validate=validate.OneOf(["draft", "published", "withdrawn"]))


class AgencyBodySchema(Schema):
    """What an editor states about an agency (everything but code and status)."""

    name = fields.String(required=True, validate=_NAME)
    level = fields.String(required=True, validate=validate.OneOf(AGENCY_LEVELS))
    kind = fields.String(required=True, validate=KIND)
    parent_code = fields.String(allow_none=True, load_default=None, validate=CODE)
    province_code = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1, max=999))
    province_name = fields.String(allow_none=True, load_default=None, validate=_short(200))
    ward_code = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1, max=99999))
    ward_name = fields.String(allow_none=True, load_default=None, validate=_short(200))
    address = fields.String(allow_none=True, load_default=None, validate=_short(500))
    phone = fields.String(allow_none=True, load_default=None,
                          validate=validate.Regexp(r"^[0-9+() .-]{3,40}$", error="Not a phone number."))
    email = fields.Email(allow_none=True, load_default=None, validate=validate.Length(max=200))


class AgencySchema(AgencyBodySchema):
    code = fields.String(required=True, validate=CODE)
    status = fields.String(required=True, validate=validate.OneOf(["active", "dissolved"]))
    successor = fields.String(allow_none=True, load_default=None)
    dissolved_on = fields.Date(allow_none=True, load_default=None)
    version = fields.Integer(required=True)


class AgenciesByWardSchema(Schema):
    """The catalog's ``agencies_by_ward`` answer: a procedure's agencies for every ward of one
    province, which the dossier service keeps (one call for all the province's wards)."""

    procedure_code = fields.String(required=True)
    province = fields.Integer(required=True)
    wards = fields.List(fields.String(), required=True)
    everywhere = fields.List(fields.Dict(), required=True)
    by_ward = fields.Dict(keys=fields.String(), values=fields.List(fields.Dict()), required=True)

    @post_load
    def _ward_set(self, data: dict, **_: object) -> dict:
        return dict(data, ward_set=frozenset(data["wards"]))


def load_ward_table(fetch: Callable[[], Any]) -> dict | None:
    """The catalog's ``agencies_by_ward`` answer (``fetch()``), loaded; None when the catalog
    has no such call (one from before it) or answered something else, and the caller then asks
    ``agencies_for`` per place."""
    try:
        return AgenciesByWardSchema().load(fetch())
    except (MethodNotFound, ValidationError):
        log.warning("catalog: no agencies_by_ward table; asking per place", exc_info=True)
        return None


def ward_agencies(table: dict, ward: object) -> list[dict] | None:
    """A ward's agencies from a loaded ``agencies_by_ward`` table (``everywhere`` and then the
    ward's own), as ``agencies_for`` answers for that ward; None for a ward the table does not
    list (another province's, not a ward code), which the caller asks ``agencies_for`` about."""
    text = str(ward) if isinstance(ward, (str, int)) and not isinstance(ward, bool) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or str(int(text)) not in table["ward_set"]:
        return None
    return table["everywhere"] + table["by_ward"].get(str(int(text)), [])


@CATALOGUE.register("ProcedurePublished", 1, PRODUCER, "A procedure was published (its first version).")
class ProcedurePublishedV1(ProcedureSchema):
    pass


@CATALOGUE.register("ProcedureDrafted", 1, PRODUCER,
                    "A procedure draft was saved (not yet offered; ProcedurePublished follows when it is).")
class ProcedureDraftedV1(ProcedureSchema):
    pass


@CATALOGUE.register("ProcedureAmended", 1, PRODUCER,
                    "A procedure got a new version; earlier versions stay readable.")
class ProcedureAmendedV1(ProcedureSchema):
    previous_version = fields.Integer(required=True)
    changed = fields.List(fields.String(), required=True)


@CATALOGUE.register("ProcedureWithdrawn", 1, PRODUCER, "A procedure is no longer offered for new filing.")
class ProcedureWithdrawnV1(Schema):
    code = fields.String(required=True)
    version = fields.Integer(required=True)
    reason = fields.String(required=True, validate=_TEXT)


@CATALOGUE.register("AgencyRegistered", 1, PRODUCER, "An implementing agency was registered.")
class AgencyRegisteredV1(AgencySchema):
    pass


@CATALOGUE.register("AgencyAmended", 1, PRODUCER, "An agency's details changed.")
class AgencyAmendedV1(AgencySchema):
    changed = fields.List(fields.String(), required=True)


@CATALOGUE.register("AgencyDissolved", 1, PRODUCER,
                    "An agency was dissolved; dossiers addressed to it go to its successor.")
class AgencyDissolvedV1(Schema):
    code = fields.String(required=True)
    successor = fields.String(required=True)
    resolved_successor = fields.String(required=True,
                                       metadata={"description": "the active agency at the chain's end"})
    dissolved_on = fields.Date(required=True)
    reason = fields.String(load_default="", validate=_TEXT)


class LifeEventSchema(LifeEventBodySchema):
    """A life event, as stored and as published."""

    id = fields.String(required=True, validate=SLUG)
    status = fields.String(required=True, validate=validate.OneOf(["active", "retired"]))
    version = fields.Integer(required=True, validate=validate.Range(min=1))


@CATALOGUE.register("LifeEventDefined", 1, PRODUCER, "A life event was defined with its procedures in order.")
class LifeEventDefinedV1(LifeEventSchema):
    pass


@CATALOGUE.register("LifeEventAmended", 1, PRODUCER,
                    "A life event's name, description, target or procedures (or their order) changed.")
class LifeEventAmendedV1(LifeEventSchema):
    changed = fields.List(fields.String(), required=True)


@CATALOGUE.register("LifeEventRetired", 1, PRODUCER,
                    "A life event is no longer offered for browsing; its procedures are unaffected.")
class LifeEventRetiredV1(LifeEventSchema):
    reason = fields.String(required=True, validate=_TEXT)


# -- editors' request bodies: the same checks at the gateway (HTTP) and at the catalog (RPC) --


class NewProcedureBody(_EditorInput, ProcedureBodySchema):
    code = fields.String(required=True, validate=CODE)


class AmendProcedureBody(_EditorInput, ProcedureBodySchema):
    """Any subset of a procedure's fields (the catalog loads it with ``partial=True``)."""


class WithdrawBody(WithdrawalSchema):
    pass


class NewAgencyBody(_EditorInput, AgencyBodySchema):
    code = fields.String(required=True, validate=CODE)


class AmendAgencyBody(_EditorInput, AgencyBodySchema):
    pass


class DissolveBody(DissolutionSchema):
    pass


class NewLifeEventBody(_EditorInput, LifeEventBodySchema):
    id = fields.String(required=True, validate=SLUG)


class AmendLifeEventBody(_EditorInput, LifeEventBodySchema):
    """Any subset of a life event's fields (the catalog loads it with ``partial=True``)."""


class RetireBody(RetirementSchema):
    pass
