"""The payment service killed while a notification is on its way: the platform's retry (and
the request the broker kept for the restarted service) apply it exactly once."""

from __future__ import annotations

import signal

import pytest

from tests.payment.conftest import FEE, notification, notify, pending_payment, wait_until

pytestmark = pytest.mark.e2e


def test_a_notification_while_the_service_is_down_is_applied_once_after_it_returns(system, gateway_url, citizen):
    code, payment = pending_payment(citizen)
    success = notification(payment["reference"], FEE, transaction_no="26120588880001")
    system.stop_one("payment", signal.SIGKILL)
    try:
        status, _ = notify(gateway_url, success)  # no one answers: the gateway gives up (503)
        assert status == 503
    finally:
        system.start_one("payment")
    # the platform keeps sending until it is answered 2xx
    answers = [wait_until(lambda: (a := notify(gateway_url, success))[0] == 200 and a, timeout=90,
                          what="the restarted payment service")[1]]
    answers += [notify(gateway_url, success)[1] for _ in range(2)]
    assert {a["result"] for a in answers[1:]} == {"already_applied"}
    dossier = wait_until(lambda: (d := citizen.dossier(code))["receipts"] and d, what="the receipt")
    events = [e["event"] for e in dossier["timeline"]]
    assert events.count("DossierPaymentReceived") == 1 and events.count("DossierReceiptAttached") == 1
    items = citizen.payments(code)["items"]
    assert len(items) == 1 and items[0]["status"] == "succeeded" and items[0]["receipt_no"]
    wait_until(system.ready, timeout=60, what="the system ready again")
