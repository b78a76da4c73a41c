"""The reference back office (deploy/backoffice) with a dossier filed with its fees due, against
the real system: the delivery of its submission finds it awaiting payment (the gateway refuses
to receive it yet), and the delivery of its payment has it received and carried to its result."""

from __future__ import annotations

import pytest

from deploy.backoffice.gateway import AgencyClient, DriveThrough
from tests.payment.conftest import complete, wait_until

pytestmark = pytest.mark.integration


def _delivery(code: str, event: str, agency: str) -> dict:
    return {"delivery_id": "d", "dossier_code": code, "event_type": event, "agency_code": agency,
            "addressed_to": agency, "data": {}, "chain": None}


def test_the_back_office_receives_a_fee_dossier_once_it_is_paid(gateway_url, citizen):
    dossier = citizen.file()
    code, agency = dossier["code"], dossier["agency"]["code"]
    citizen.due_now(code)
    client = AgencyClient(gateway_url, agency)
    client.sign_in()
    drive = DriveThrough(client)
    drive(_delivery(code, "DossierSubmitted", agency))
    assert drive.awaiting_payment == [code] and drive.refused == [] and drive.finished == []
    assert client.view(code)["status"] == "awaiting_payment"

    complete(gateway_url, citizen.pay(code)["id"], "success")
    wait_until(lambda: citizen.dossier(code)["status"] == "submitted", what="the dossier paid")
    drive(_delivery(code, "DossierPaymentReceived", agency))
    assert drive.finished == [code] and drive.refused == []
    assert citizen.dossier(code)["status"] == "returned"
    drive(_delivery(code, "DossierPaymentReceived", agency))  # the same delivery again: nothing more to do
    assert drive.finished == [code] and drive.refused == []
