"""The platform's notification under hostile and unlucky conditions, expiry, refunds and
reconciliation, through the running system."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.payment.conftest import (
    FEE,
    FREE_PROCEDURE,
    Citizen,
    agency_token,
    complete,
    notification,
    notify,
    paid_payments,
    pending_payment,
    wait_until,
)
from tests.support.http import http

pytestmark = pytest.mark.e2e
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))


def test_a_wrong_signature_is_refused_and_changes_nothing(gateway_url, citizen):
    code, payment = pending_payment(citizen)
    forged = notification(payment["reference"], FEE, secret="not-the-merchant-secret")
    assert notify(gateway_url, forged)[0] == 401
    tampered = dict(notification(payment["reference"], FEE), vnp_Amount=str(FEE))  # signed for 200.000, says 2.000
    status, body = notify(gateway_url, tampered)
    assert status == 401 and body["code"] == "invalid_signature"
    unsigned = {k: v for k, v in notification(payment["reference"], FEE).items() if k != "vnp_SecureHash"}
    assert notify(gateway_url, unsigned)[0] == 401
    assert notify(gateway_url, {"vnp_SecureHash": ["x"]})[0] in (401, 422)
    assert citizen.payments(code)["items"][0]["status"] == "pending"
    assert citizen.dossier(code)["status"] == "awaiting_payment"


def test_a_wrong_amount_or_reference_is_refused(gateway_url, citizen):
    code, payment = pending_payment(citizen)
    status, body = notify(gateway_url, notification(payment["reference"], FEE - 1))
    assert status == 422 and body["code"] == "amount_mismatch"
    status, body = notify(gateway_url, notification(uuid.uuid4().hex, FEE))
    assert status == 404
    assert citizen.payments(code)["items"][0]["status"] == "pending"


def test_repeated_late_and_out_of_order_notifications_have_one_effect(gateway_url, citizen):
    code, payment = pending_payment(citizen)
    success = notification(payment["reference"], FEE, transaction_no="26120599990001")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: notify(gateway_url, success), range(4)))
    assert all(status == 200 for status, _ in answers), answers
    assert sorted(body["result"] for _, body in answers) == ["already_applied"] * 3 + ["applied"]
    failure = notification(payment["reference"], FEE, success=False)
    assert notify(gateway_url, failure)[1]["result"] == "already_applied"  # after the success: no effect
    paid = wait_until(lambda: (p := citizen.payments(code)["items"])[0]["receipt_document_id"] and p)
    assert len(paid) == 1 and paid[0]["status"] == "succeeded"
    dossier = wait_until(lambda: (d := citizen.dossier(code))["receipts"] and d)
    events = [e["event"] for e in dossier["timeline"]]
    assert events.count("DossierPaymentReceived") == 1 and events.count("DossierReceiptAttached") == 1
    assert dossier["status"] == "submitted" and len(dossier["receipts"]) == 1


def test_a_failure_then_the_platforms_retry_of_it_stays_failed(gateway_url, citizen):
    code, payment = pending_payment(citizen)
    complete(gateway_url, payment["id"], "failure")
    wait_until(lambda: citizen.payments(code)["items"][0]["status"] == "failed")
    complete(gateway_url, payment["id"], "success")  # the platform's first outcome stands: it resends the failure
    notice = notification(payment["reference"], FEE, success=False)
    assert notify(gateway_url, notice)[1]["result"] == "already_applied"
    assert citizen.payments(code)["items"][0]["status"] == "failed"
    assert citizen.dossier(code)["status"] == "awaiting_payment"


def test_another_applicants_dossier_payments_are_not_found(gateway_url, citizen):
    code, _ = pending_payment(citizen)
    stranger = Citizen(gateway_url)
    assert stranger.get(f"/api/v1/dossiers/{code}/payments")[0] == 404
    status, _ = stranger.post(f"/api/v1/dossiers/{code}/payments", {}, headers={"Idempotency-Key": "x"})
    assert status == 404
    assert stranger.get("/api/v1/dossiers/NO-SUCH-CODE/payments")[0] == 404
    status, body = citizen.post(f"/api/v1/dossiers/{code}/payments", {"fee_ids": ["nope"]},
                                headers={"Idempotency-Key": "y"})
    assert status == 422 and body["code"] == "unknown_fee"


def agency_dossier(gateway_url: str, citizen: Citizen) -> tuple[str, str]:
    dossier = citizen.file(FREE_PROCEDURE)
    token = agency_token(gateway_url, dossier)
    for action in ("receive", "start-processing"):
        status, body, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{dossier['code']}/{action}", "POST", {},
                               token=token)
        assert status == 200, body
    return dossier["code"], token


def test_an_agency_payment_request_stops_the_clock_until_paid(gateway_url, citizen):
    code, token = agency_dossier(gateway_url, citizen)
    url = f"{gateway_url}/api/v1/agency/dossiers/{code}"
    status, body, _ = http(f"{url}/request-payment", "POST", {"amount": 0, "reason": "x"}, token=token)
    assert status == 422
    status, body, _ = http(f"{url}/request-payment", "POST", {"amount": 150000, "reason": "Phí thẩm định"},
                           token=token)
    assert status == 200 and body["status"] == "awaiting_payment", body
    appointment = body["appointment_date"]
    status, _, _ = http(f"{url}/result", "POST", {"documents": []}, token=token)
    assert status == 409  # nothing is decided while the applicant owes the obligation
    assert citizen.dossier(code)["status"] == "awaiting_payment"
    [due] = citizen.due_now(code)
    assert due["amount"] == 150000 and due["reason"] == "Phí thẩm định"
    payment = citizen.pay(code)
    complete(gateway_url, payment["id"], "success")
    dossier = wait_until(lambda: (d := citizen.dossier(code))["status"] == "processing" and d)
    entries = {e["event"]: e for e in dossier["timeline"]}
    assert entries["DossierPaymentRequested"]["amount"] == 150000
    assert entries["DossierPaymentReceived"]["resumed_on"]
    assert dossier["appointment_date"] >= appointment


def test_an_unpaid_obligation_expires_and_a_late_payment_is_refunded(gateway_url, citizen, payment_rpc):
    code, token = agency_dossier(gateway_url, citizen)
    today = dt.datetime.now(LOCAL_TZ).date()
    status, body, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/request-payment", "POST",
                           {"amount": 30000, "reason": "Phí", "due_date": today.isoformat()}, token=token)
    assert status == 200, body
    citizen.due_now(code)
    payment = citizen.pay(code)
    assert payment_rpc.expire_due(today.isoformat()) == []  # due today: not yet
    expired = payment_rpc.expire_due((today + dt.timedelta(days=1)).isoformat())
    assert len(expired) == 1
    wait_until(lambda: citizen.dossier(code)["status"] == "payment_expired", what="payment_expired")
    assert citizen.payments(code)["items"][0]["status"] == "expired"
    complete(gateway_url, payment["id"], "success")  # paid after all: the money goes back
    refunded = wait_until(lambda: (p := citizen.payments(code)["items"][0])["status"] == "refunded" and p)
    assert refunded["refund_status"] == "succeeded"
    assert citizen.dossier(code)["status"] == "payment_expired"  # the agency decides what follows
    status, body, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/request-payment", "POST",
                           {"amount": 30000, "reason": "Phí, lần hai"}, token=token)
    assert status == 200 and body["status"] == "awaiting_payment"


def test_a_dossier_refused_at_reception_has_its_fee_refunded(gateway_url, citizen):
    code, payment = pending_payment(citizen)
    complete(gateway_url, payment["id"], "success")
    wait_until(lambda: citizen.dossier(code)["status"] == "submitted")
    token = agency_token(gateway_url, citizen.dossier(code))
    status, body, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/refuse", "POST",
                           {"reason": "Hồ sơ không thuộc thẩm quyền"}, token=token)
    assert status == 200, body
    wait_until(lambda: citizen.payments(code)["items"][0]["status"] == "refunded", what="refund")
    day = dt.datetime.now(LOCAL_TZ).date().isoformat()
    status, file, _ = http(f"{gateway_url}/api/v1/dev/payment-platform/settlements?date={day}")
    lines = [x for x in file["items"] if x["reference"] == payment["reference"]]
    assert sorted(x["kind"] for x in lines) == ["payment", "refund"]


def test_reconciliation_finds_each_kind_of_mismatch(gateway_url, citizen, payment_rpc, sql, amqp_uri):
    paid = paid_payments(gateway_url, citizen, 3)
    references = [payment["reference"] for _, payment in paid]
    code = paid[-1][0]
    matched, missing_there, different = references
    stranger = uuid.uuid4().hex
    day = dt.datetime.now(LOCAL_TZ).date()
    sql("DELETE FROM platform_settlements WHERE reference = %s", (missing_there,))
    sql("UPDATE platform_settlements SET amount = amount + 1000 WHERE reference = %s", (different,))
    sql("INSERT INTO platform_settlements (day, reference, transaction_no, kind, amount) "
        "VALUES (%s, %s, 'X1', 'payment', 50000)", (day, stranger))
    result = payment_rpc.reconcile(day.isoformat())
    kinds = {m["reference"]: m["kind"] for m in result["items"]}
    assert kinds[missing_there] == "paid_here_not_there" and kinds[different] == "amount_differs"
    assert kinds[stranger] == "paid_there_not_here" and matched not in kinds
    assert payment_rpc.reconcile(day.isoformat())["new"] == 0  # found once, reported once
    listed = subprocess.run([sys.executable, "-m", "services.payment.ops", "payment-mismatches", "--date",
                             day.isoformat(), "--amqp-uri", amqp_uri], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert stranger in listed.stdout and "amount_differs" in listed.stdout
    assert citizen.payments(code)["items"][0]["status"] == "succeeded"  # nothing changed silently


def test_a_payment_whose_notification_never_came_is_queried_at_the_platform(citizen, payment_rpc, sql):
    code, payment = pending_payment(citizen)
    # the platform took the money but its notification is lost (nothing queued to send)
    sql("UPDATE platform_transactions SET status = 'success', transaction_no = '26120577770001', "
        "completed_at = now() WHERE payment_id = %s", (payment["id"],))
    assert payment["reference"] not in payment_rpc.check_pending()  # not pending long enough yet
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert payment["reference"] in payment_rpc.check_pending(later)
    assert citizen.payments(code)["items"][0]["status"] == "succeeded"
    wait_until(lambda: citizen.dossier(code)["status"] == "submitted", what="dossier paid")
    assert payment["reference"] not in payment_rpc.check_pending(later)  # settled: asked no more


def test_withdrawn_before_processing_refunds_and_a_reused_key_is_refused(gateway_url, citizen):
    code, payment = pending_payment(citizen)
    other = citizen.file()["code"]
    citizen.due_now(other)
    key = str(uuid.uuid4())
    citizen.pay(other, key)
    status, body = citizen.post(f"/api/v1/dossiers/{code}/payments", {}, headers={"Idempotency-Key": key})
    assert status == 409 and body["code"] == "idempotency_key_reused"
    complete(gateway_url, payment["id"], "success")
    wait_until(lambda: citizen.dossier(code)["status"] == "submitted")
    status, body = citizen.post(f"/api/v1/dossiers/{code}/withdraw", {"reason": "Không cần nữa"})
    assert status == 200 and body["status"] == "withdrawn"
    refunded = wait_until(lambda: (p := citizen.payments(code)["items"][0])["status"] == "refunded" and p)
    assert refunded["refund_status"] == "succeeded" and refunded["receipt_document_id"]


def test_an_operator_refunds_a_payment_once(gateway_url, citizen, payment_rpc):
    code, payment = pending_payment(citizen)
    operator = {"actor": {"kind": "operator", "id": "portal-ops"}}
    with pytest.raises(Exception) as refused:  # nothing was paid yet
        payment_rpc.refund(payment["id"], "duplicate", operator)
    assert "not_refundable" in str(refused.value)
    complete(gateway_url, payment["id"], "success")
    wait_until(lambda: citizen.payments(code)["items"][0]["status"] == "succeeded")
    assert payment_rpc.refund(payment["id"], "paid twice at the counter", operator)["refund_status"] == "succeeded"
    assert payment_rpc.refund(payment["id"], "again", operator)["refund_status"] == "succeeded"
    day = dt.datetime.now(LOCAL_TZ).date().isoformat()
    _, file, _ = http(f"{gateway_url}/api/v1/dev/payment-platform/settlements?date={day}")
    assert [x["kind"] for x in file["items"] if x["reference"] == payment["reference"]] == ["payment", "refund"]
    assert citizen.payments(code)["items"][0]["status"] == "refunded"
