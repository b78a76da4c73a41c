"""Contracts of the payment service: the events it publishes (exchange ``payment.events``) and
the bodies the gateway and the service both check.

Money is in VND integers. Streams: ``charge-<uuid>`` (something a dossier owes: the fees due
at filing or an obligation an agency found during processing), ``payment-<uuid>`` (one attempt
to pay one or more charges at the payment platform, with its receipt and refund) and
``settlement-<YYYY-MM-DD>`` (the daily comparison with the platform's settlement file). The
platform's signed notification is the only truth of a payment's outcome.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal_common.contracts import CATALOGUE
from portal_common.contracts.dossier import Line, Text
from portal_common.contracts.fields import Utf8Schema

PRODUCER = "payment"
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "expired", "refunded")
CHARGE_STATUSES = ("open", "paid", "expired")
OUTCOMES = ("success", "failure")
MISMATCH_KINDS = ("paid_there_not_here", "paid_here_not_there", "amount_differs")
MAX_AMOUNT = 10**12


# -- bodies: the same checks at the gateway (HTTP) and at the service (RPC) -------------------


class CreatePaymentBody(Utf8Schema):
    """``POST /api/v1/dossiers/{code}/payments``: which of the fees due to pay (default: all)."""

    fee_ids = fields.List(Line(100, 1), load_default=None, allow_none=True, validate=validate.Length(min=1, max=20),
                          metadata={"description": "ids of the `due` items to pay; all of them when absent"})


class RequestPaymentBody(Utf8Schema):
    """``POST /api/v1/agency/dossiers/{code}/request-payment``: an obligation found during processing."""

    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_AMOUNT),
                            metadata={"description": "VND"})
    reason = Text(2000, 1, required=True)
    due_date = fields.Date(load_default=None, allow_none=True,
                           metadata={"description": "unpaid after this day, the dossier becomes payment_expired"})


class DisputeExemptionBody(Utf8Schema):
    """``POST /api/v1/agency/dossiers/{code}/dispute-exemption``: the applicant is not exempt from this fee."""

    fee_id = Line(100, 1, required=True, metadata={"description": "the fee whose declared exemption is disputed"})
    reason = Text(2000, 1, required=True)


class PlatformCompleteBody(Utf8Schema):
    """``POST /api/v1/dev/payment-platform/complete``: the local platform settles a payment."""

    payment_id = fields.UUID(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))


class SettlementQuery(Utf8Schema):
    date = fields.Date(required=True, metadata={"description": "the settlement day (local)"})


class RefundBody(Utf8Schema):
    reason = Text(2000, 1, required=True)


# -- events -------------------------------------------------------------------------------------


class FeeLineSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    amount = fields.Integer(required=True)
    basis = fields.String(load_default="fixed")
    copies = fields.Integer(load_default=1)


class _OfDossier(Schema):
    dossier_code = fields.String(required=True)


class _Payment(_OfDossier):
    payment_id = fields.UUID(required=True)


@CATALOGUE.register("PaymentRequested", 1, PRODUCER,
                    "A dossier owes an amount: fees due at filing or an obligation found during processing.")
class PaymentRequestedV1(_OfDossier):
    charge_id = fields.UUID(required=True, metadata={"description": "the dossier's request_id"})
    agency_code = fields.String(required=True)
    agency_name = fields.String(allow_none=True, load_default=None)
    owner_account_id = fields.String(required=True)
    payer_name = fields.String(allow_none=True, load_default=None)
    amount = fields.Integer(required=True)
    fees = fields.List(fields.Nested(FeeLineSchema), required=True)
    reason = fields.String(allow_none=True, load_default=None)
    due_date = fields.Date(allow_none=True, load_default=None)
    blocking = fields.Boolean(required=True, metadata={"description": "the dossier waits for it"})


@CATALOGUE.register("PaymentInitiated", 1, PRODUCER, "The applicant started paying charges at the platform.")
class PaymentInitiatedV1(_Payment):
    charge_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1))
    amount = fields.Integer(required=True)
    reference = fields.String(required=True, metadata={"description": "our reference at the platform"})
    owner_account_id = fields.String(required=True)
    idempotency_key = fields.String(allow_none=True, load_default=None)


@CATALOGUE.register("PaymentSucceeded", 1, PRODUCER,
                    "The platform's signed notification confirmed the payment.")
class PaymentSucceededV1(_Payment):
    charge_ids = fields.List(fields.UUID(), required=True)
    amount = fields.Integer(required=True)
    transaction_no = fields.String(required=True)
    paid_at = fields.DateTime(required=True)
    late = fields.Boolean(load_default=False,
                          metadata={"description": "its charges were expired or paid already: it is refunded"})


@CATALOGUE.register("PaymentFailed", 1, PRODUCER, "The platform reported the payment failed (or it timed out).")
class PaymentFailedV1(_Payment):
    reason = fields.String(required=True)
    response_code = fields.String(allow_none=True, load_default=None)


@CATALOGUE.register("PaymentExpired", 1, PRODUCER, "A charge was not paid by its due date.")
class PaymentExpiredV1(_OfDossier):
    charge_id = fields.UUID(required=True)
    due_date = fields.Date(required=True)


@CATALOGUE.register("ReceiptIssued", 1, PRODUCER, "An electronic receipt (biên lai điện tử) was issued.")
class ReceiptIssuedV1(_Payment):
    receipt_no = fields.String(required=True)
    amount = fields.Integer(required=True)
    document_id = fields.UUID(required=True, metadata={"description": "its id among the dossier's documents"})


@CATALOGUE.register("RefundRequested", 1, PRODUCER, "A succeeded payment is to be paid back.")
class RefundRequestedV1(_Payment):
    amount = fields.Integer(required=True)
    reason = fields.String(required=True)


@CATALOGUE.register("RefundSucceeded", 1, PRODUCER, "The platform paid the refund back.")
class RefundSucceededV1(_Payment):
    amount = fields.Integer(required=True)
    transaction_no = fields.String(required=True)
    refunded_at = fields.DateTime(required=True)


@CATALOGUE.register("SettlementReconciled", 1, PRODUCER,
                    "A day's settlement file was compared with the payments recorded here.")
class SettlementReconciledV1(Schema):
    date = fields.Date(required=True)
    matched = fields.Integer(required=True)
    mismatches = fields.Integer(required=True)


@CATALOGUE.register("SettlementMismatchFound", 1, PRODUCER,
                    "The settlement file and our payments disagree on one payment (nothing was changed).")
class SettlementMismatchFoundV1(Schema):
    date = fields.Date(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(MISMATCH_KINDS))
    reference = fields.String(required=True)
    payment_id = fields.UUID(allow_none=True, load_default=None)
    amount_here = fields.Integer(allow_none=True, load_default=None)
    amount_there = fields.Integer(allow_none=True, load_default=None)
