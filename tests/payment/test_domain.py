"""The payment service's pure rules: the platform's checksum, what a notification does, and
the settlement comparison."""

from __future__ import annotations

import datetime as dt

import pytest

from portal_common.errors import Conflict, InvalidInput
from services.payment.domain import payments, reconcile, signing
from services.payment.domain.payments import Notification, PaymentState

NOW = dt.datetime(2026, 12, 5, 3, 0, tzinfo=dt.UTC)
FIELDS = {"vnp_TxnRef": "abc", "vnp_Amount": "20000000", "vnp_ResponseCode": "00", "vnp_TransactionStatus": "00",
          "vnp_TransactionNo": "14000001", "vnp_PayDate": "20261205100000", "vnp_OrderInfo": "Thanh toán hồ sơ"}


def test_the_checksum_is_hmac_sha512_over_the_sorted_fields():
    import hashlib
    import hmac

    text = signing.canonical(FIELDS)
    assert text.startswith("vnp_Amount=20000000&vnp_OrderInfo=Thanh+to%C3%A1n+h%E1%BB%93+s%C6%A1&vnp_PayDate=")
    assert signing.sign(FIELDS, "s3cret") == hmac.new(b"s3cret", text.encode(), hashlib.sha512).hexdigest()
    signed = signing.signed(FIELDS, "s3cret")
    assert signing.verify(signed, ["s3cret"]) and signing.verify(signed, ["new", "s3cret"])  # rotation
    assert not signing.verify(signed, ["other"]) and not signing.verify(FIELDS, ["s3cret"])
    assert not signing.verify(dict(signed, vnp_Amount="100"), ["s3cret"])
    assert not signing.verify(signed, [""])


def state(**kw) -> PaymentState:
    base = PaymentState(payment_id="p1", version=1, dossier_code="D1", owner_account_id="a1", charge_ids=["c1"],
                        amount=200000, reference="abc", status="pending")
    for k, v in kw.items():
        setattr(base, k, v)
    return base


def note(success: bool = True, amount: int = 200000) -> Notification:
    return Notification("abc", amount, success, "00" if success else "24", "14000001", NOW)


RECEIPT = {"receipt_no": "BL2026-00000001", "document_id": "9d1f7f0e-0000-4000-8000-000000000001"}


def test_a_success_pays_and_issues_a_receipt_once():
    events = payments.decide_notification(state(), note(), True, RECEIPT)
    assert [t for t, _ in events] == ["PaymentSucceeded", "ReceiptIssued"]
    after = state()
    for t, d in events:
        after = payments.evolve(after, t, d)
    assert after.status == "succeeded" and after.receipt_no == "BL2026-00000001"
    assert payments.decide_notification(after, note(), True, RECEIPT) == []  # a duplicate
    assert payments.decide_notification(after, note(False), True, None) == []  # a failure after it


def test_a_failure_then_a_success_records_the_money_taken():
    failed = payments.evolve(state(), "PaymentFailed", {"reason": "declined"})
    assert payments.decide_notification(failed, note(False), True, None) == []
    assert payments.decide_notification(failed, note(), True, RECEIPT)[0][0] == "PaymentSucceeded"


def test_a_success_on_expired_charges_is_late_and_refunded():
    events = payments.decide_notification(state(), note(), False, None)
    assert [t for t, _ in events] == ["PaymentSucceeded", "RefundRequested"] and events[0][1]["late"]


def test_a_wrong_amount_changes_nothing():
    with pytest.raises(InvalidInput) as refused:
        payments.decide_notification(state(), note(amount=199999), True, RECEIPT)
    assert refused.value.code == "amount_mismatch"


def test_reading_a_notification():
    read = payments.read_notification(FIELDS, NOW)
    assert (read.amount, read.success, read.reference) == (200000, True, "abc")
    assert read.paid_at == dt.datetime(2026, 12, 5, 3, 0, tzinfo=dt.UTC)
    for bad in ({**FIELDS, "vnp_Amount": "-5"}, {**FIELDS, "vnp_Amount": "12345"}, {"vnp_TxnRef": "x"}):
        with pytest.raises(InvalidInput):
            payments.read_notification(bad, NOW)
    assert not payments.read_notification({**FIELDS, "vnp_TransactionStatus": "02"}, NOW).success


def test_refunds_are_requested_once_and_only_for_money_taken():
    with pytest.raises(Conflict):
        payments.decide_refund(state(), "x")
    paid = state(status="succeeded")
    [(event_type, _)] = payments.decide_refund(paid, "refused")
    assert event_type == "RefundRequested"
    assert payments.decide_refund(state(status="succeeded", refund="requested"), "again") == []


def test_reconciliation_names_each_kind_of_mismatch():
    there = [{"reference": "a", "kind": "payment", "amount": 100}, {"reference": "b", "kind": "payment", "amount": 90},
             {"reference": "z", "kind": "payment", "amount": 5}, {"reference": "a", "kind": "refund", "amount": 100}]
    here = [{"reference": "a", "amount": 100, "payment_id": "pa"},
            {"reference": "b", "amount": 100, "payment_id": "pb"},
            {"reference": "c", "amount": 7, "payment_id": "pc"}]
    matched, found = reconcile.compare(there, here)
    assert matched == 1
    assert {(m["reference"], m["kind"]) for m in found} == {
        ("b", "amount_differs"), ("c", "paid_here_not_there"), ("z", "paid_there_not_here")}
