"""Fees and payment through the running system: the catalog shows the fee, a filing waits for
it, the citizen pays at the local platform, the platform's notification moves the dossier on,
the receipt downloads; the agency asks for a further payment during processing."""

from __future__ import annotations

import uuid

import pytest

from tests.payment.conftest import (
    FEE,
    FEE_PROCEDURE,
    FREE_PROCEDURE,
    agency_token,
    complete,
    wait_until,
)
from tests.payment.pdf_text import pdf_text
from tests.support.http import http

pytestmark = pytest.mark.e2e


def test_the_catalog_shows_the_legal_fee(gateway_url):
    status, procedure, _ = http(f"{gateway_url}/api/v1/procedures/{FEE_PROCEDURE}")
    assert status == 200
    [fee] = procedure["fees"]
    assert fee["amount"] == FEE and fee["amount_vnd"] == FEE and fee["id"] == "le-phi"
    assert fee["basis"] == "fixed" and fee["due"] == "before_reception"
    assert "244/2016/TT-BTC" in fee["legal_basis"] and fee["illustrative"] is False
    assert "Trẻ em" in fee["exemptions"]


def test_pay_the_fee_and_the_dossier_moves_on_with_a_receipt(gateway_url, citizen):
    dossier = citizen.file()
    code = dossier["code"]
    assert dossier["status"] == "awaiting_payment"
    [due] = citizen.due_now(code)
    assert due["amount"] == FEE and due["blocking"] and due["fees"][0]["id"] == "le-phi"
    key = str(uuid.uuid4())
    payment = citizen.pay(code, key)
    assert payment["status"] == "pending" and payment["amount"] == FEE
    assert "/api/v1/dev/payment-platform/pay?" in payment["payment_url"] and "vnp_SecureHash=" in payment["payment_url"]
    assert citizen.pay(code, key)["id"] == payment["id"]  # the same key: the same payment
    page = http(payment["payment_url"])
    assert page[0] == 200 and b"200.000" in page[1]

    complete(gateway_url, payment["id"], "success")
    moved = wait_until(lambda: (d := citizen.dossier(code))["status"] == "submitted" and d, what="dossier paid")
    assert [e["event"] for e in moved["timeline"]][:3] == ["DossierSubmitted", "DossierPaymentRequested",
                                                           "DossierPaymentReceived"]
    paid = wait_until(lambda: (p := citizen.payments(code)["items"][0])["receipt_document_id"] and p)
    assert paid["status"] == "succeeded" and citizen.payments(code)["due"] == []
    receipt_url = f"{gateway_url}/api/v1/dossiers/{code}/documents/{paid['receipt_document_id']}"
    status, content, headers = wait_until(
        lambda: (r := http(receipt_url, token=citizen.token))[0] == 200 and r, what="the receipt attached")
    assert headers["Content-Type"].startswith("application/pdf") and content.startswith(b"%PDF")
    assert paid["receipt_no"].startswith("BL")
    shown = pdf_text(content)
    assert paid["receipt_no"] in shown and "200.000 đồng" in shown and "Trần Thị Nộp" in shown
    assert "Lệ phí" in shown and code in shown
    officer = agency_token(gateway_url, dossier)
    status, seen, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}", token=officer)
    assert status == 200 and any(r["id"] == paid["receipt_document_id"] for r in seen["receipts"])
    status, _, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/documents/{paid['receipt_document_id']}",
                        token=officer)
    assert status == 200
    status, received, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/receive", "POST", {}, token=officer)
    assert status == 200 and received["status"] == "received"


def test_a_failed_payment_leaves_the_dossier_waiting(gateway_url, citizen):
    code = citizen.file()["code"]
    citizen.due_now(code)
    payment = citizen.pay(code)
    complete(gateway_url, payment["id"], "failure")
    wait_until(lambda: citizen.payments(code)["items"][0]["status"] == "failed", what="payment failed")
    assert citizen.dossier(code)["status"] == "awaiting_payment"
    assert citizen.payments(code)["due"][0]["amount"] == FEE
    retry = citizen.pay(code)
    assert retry["id"] != payment["id"] and retry["status"] == "pending"


def test_a_free_procedure_has_nothing_due(gateway_url, citizen):
    dossier = citizen.file(FREE_PROCEDURE)
    assert dossier["status"] == "submitted"
    assert citizen.payments(dossier["code"]) == {"due": [], "items": [], "exemptions": []}
    status, body = citizen.post(f"/api/v1/dossiers/{dossier['code']}/payments", {},
                                headers={"Idempotency-Key": "k1"})
    assert status == 409 and body["code"] == "nothing_due"
