"""marshmallow schemas at the catalog's boundary: what editors may send over RPC.

The document shapes themselves live in ``portal_common.contracts.catalog`` (they are also
the event payloads); these add the code and refuse unknown keys.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from portal_common.contracts.catalog import CODE, AgencyBodySchema, ProcedureBodySchema


class ProcedureInput(ProcedureBodySchema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=CODE)


class ProcedureAmendInput(ProcedureBodySchema):
    """Any subset of a procedure's fields (loaded with ``partial=True``)."""

    class Meta:
        unknown = RAISE


class WithdrawInput(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class AgencyInput(AgencyBodySchema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=CODE)


class AgencyAmendInput(AgencyBodySchema):
    class Meta:
        unknown = RAISE


class DissolveInput(Schema):
    class Meta:
        unknown = RAISE

    successor = fields.String(required=True, validate=CODE)
    dissolved_on = fields.Date(load_default=None)
    reason = fields.String(load_default="", validate=validate.Length(max=4000))
