"""marshmallow schemas at the catalog's boundary: what editors may send over RPC.

The document shapes themselves live in ``portal_common.contracts.catalog`` (they are also
the event payloads); these add the code and refuse unknown keys.
"""

from __future__ import annotations

from marshmallow import RAISE, fields

from portal_common.contracts.catalog import (
    CODE,
    SLUG,
    AgencyBodySchema,
    DissolutionSchema,
    LifeEventBodySchema,
    ProcedureBodySchema,
    RetirementSchema,
    WithdrawalSchema,
)


class ProcedureInput(ProcedureBodySchema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=CODE)


class ProcedureAmendInput(ProcedureBodySchema):
    """Any subset of a procedure's fields (loaded with ``partial=True``)."""

    class Meta:
        unknown = RAISE


class WithdrawInput(WithdrawalSchema):
    pass


class AgencyInput(AgencyBodySchema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=CODE)


class AgencyAmendInput(AgencyBodySchema):
    class Meta:
        unknown = RAISE


class DissolveInput(DissolutionSchema):
    pass


class LifeEventInput(LifeEventBodySchema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=SLUG)


class LifeEventAmendInput(LifeEventBodySchema):
    """Any subset of a life event's fields (loaded with ``partial=True``)."""

    class Meta:
        unknown = RAISE


class RetireInput(RetirementSchema):
    pass
