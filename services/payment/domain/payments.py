"""A payment's life as a pure state machine over its events, and what a notification does.

    PaymentInitiated ─success─▶ PaymentSucceeded (+ ReceiptIssued) ─▶ RefundRequested ─▶ RefundSucceeded
            └─failure─▶ PaymentFailed ─(a late success: the money was taken)─▶ PaymentSucceeded

The platform's signed notification is the only truth of an outcome. A repeated, late or
out-of-order notification changes nothing once a payment has succeeded; a failure after a
success is ignored; a success after a failure is recorded (the money was taken). A success
whose charges are no longer open (expired, or paid by another payment) is recorded ``late``
and refunded at once: nothing is kept silently and nothing is lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from portal_common.errors import Conflict, InvalidInput

PENDING, SUCCEEDED, FAILED, EXPIRED, REFUNDED = "pending", "succeeded", "failed", "expired", "refunded"
SUCCESS_CODE = "00"


@dataclass
class PaymentState:
    payment_id: str | None = None
    version: int = 0
    dossier_code: str | None = None
    owner_account_id: str | None = None
    charge_ids: list[str] = field(default_factory=list)
    amount: int = 0
    reference: str | None = None
    status: str | None = None
    transaction_no: str | None = None
    paid_at: str | None = None
    late: bool = False
    receipt_no: str | None = None
    document_id: str | None = None
    refund: str | None = None  # requested | succeeded

    @property
    def exists(self) -> bool:
        return self.version > 0


def evolve(state: PaymentState, event_type: str, data: dict[str, Any]) -> PaymentState:
    s = PaymentState(**{k: getattr(state, k) for k in state.__dataclass_fields__})
    s.version = state.version + 1
    if event_type == "PaymentInitiated":
        s.payment_id, s.dossier_code = str(data["payment_id"]), data["dossier_code"]
        s.owner_account_id, s.amount, s.reference = data["owner_account_id"], data["amount"], data["reference"]
        s.charge_ids = [str(c) for c in data["charge_ids"]]
        s.status = PENDING
    elif event_type == "PaymentSucceeded":
        s.status, s.transaction_no, s.paid_at = SUCCEEDED, data["transaction_no"], data["paid_at"]
        s.late = bool(data.get("late"))
    elif event_type == "PaymentFailed":
        s.status = FAILED
    elif event_type == "ReceiptIssued":
        s.receipt_no, s.document_id = data["receipt_no"], str(data["document_id"])
    elif event_type == "RefundRequested":
        s.refund = "requested"
    elif event_type == "RefundSucceeded":
        s.refund, s.status = "succeeded", REFUNDED
    else:
        raise ValueError(f"not a payment event: {event_type}")
    return s


def replay(events: list[Any]) -> PaymentState:
    state = PaymentState()
    for event in events:
        state = evolve(state, event.event_type, event.data)
    return state


@dataclass(frozen=True)
class Notification:
    """A verified notification's meaning."""

    reference: str
    amount: int
    success: bool
    response_code: str
    transaction_no: str
    paid_at: dt.datetime


def read_notification(fields: dict[str, str], now: dt.datetime) -> Notification:
    """The fields of a (signature-checked) notification, or InvalidInput."""
    try:
        raw_amount = str(fields["vnp_Amount"])
        if not raw_amount.isdigit() or len(raw_amount) > 16:
            raise ValueError
        amount_x100 = int(raw_amount)
        reference = str(fields["vnp_TxnRef"])
        code = str(fields.get("vnp_ResponseCode") or "")
    except (KeyError, ValueError):
        raise InvalidInput("invalid_notification", "The notification lacks a reference or amount.") from None
    if amount_x100 % 100:
        raise InvalidInput("amount_mismatch", "The amount is not a whole number of VND.")
    paid_at = now
    stamp = str(fields.get("vnp_PayDate") or "")
    if len(stamp) == 14 and stamp.isdigit():
        local = dt.datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone(dt.timedelta(hours=7)))
        paid_at = local.astimezone(dt.UTC)
    status = str(fields.get("vnp_TransactionStatus") or code)
    return Notification(reference, amount_x100 // 100, code == SUCCESS_CODE and status == SUCCESS_CODE, code,
                        str(fields.get("vnp_TransactionNo") or ""), paid_at)


def decide_notification(state: PaymentState, note: Notification, charges_open: bool,
                        receipt: dict[str, Any] | None) -> list[tuple[str, dict]]:
    """The events a verified notification causes (none for a repeat or a stale one).

    ``charges_open``: every charge the payment pays is still open (not expired, not paid by
    another payment). ``receipt``: the receipt number and document id to issue on success.
    """
    if note.amount != state.amount:
        raise InvalidInput("amount_mismatch", "The notified amount differs from the payment's.",
                           [{"field": "vnp_Amount", "message": "does not match"}])
    base = {"payment_id": state.payment_id, "dossier_code": state.dossier_code}
    if state.status in (SUCCEEDED, REFUNDED):
        return []  # duplicate, late or out of order: the first confirmation stands
    if not note.success:
        if state.status == FAILED:
            return []
        return [("PaymentFailed", {**base, "reason": "declined", "response_code": note.response_code})]
    if not note.transaction_no:
        raise InvalidInput("invalid_notification", "A successful payment needs the platform's transaction number.")
    late = not charges_open
    events: list[tuple[str, dict]] = [("PaymentSucceeded", {
        **base, "charge_ids": state.charge_ids, "amount": state.amount, "transaction_no": note.transaction_no,
        "paid_at": note.paid_at.isoformat(), "late": late})]
    if receipt is not None:
        events.append(("ReceiptIssued", {**base, "receipt_no": receipt["receipt_no"], "amount": state.amount,
                                         "document_id": receipt["document_id"]}))
    if late:
        events.append(("RefundRequested", {**base, "amount": state.amount,
                                           "reason": "paid after its charges expired or were paid"}))
    return events


def decide_refund(state: PaymentState, reason: str) -> list[tuple[str, dict]]:
    """RefundRequested for a succeeded payment not refunded yet (none when it already is)."""
    if state.status not in (SUCCEEDED, REFUNDED):
        raise Conflict("not_refundable", "Only a succeeded payment is refunded.", {"status": state.status})
    if state.refund is not None:
        return []
    return [("RefundRequested", {"payment_id": state.payment_id, "dossier_code": state.dossier_code,
                                 "amount": state.amount, "reason": reason})]


def receipt_number(year: int, sequence: int) -> str:
    return f"BL{year}-{sequence:08d}"
