"""Events every service may publish about itself (and the test fixtures' probe event)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal_common.contracts import CATALOGUE


@CATALOGUE.register(
    "ServiceProbeRecorded", 1, "system",
    "A probe written by an operator or a test to check that the log and its relay work.",
)
class ServiceProbeRecordedV1(Schema):
    note = fields.String(required=True, validate=validate.Length(max=500))
    sequence = fields.Integer(load_default=None, allow_none=True)
