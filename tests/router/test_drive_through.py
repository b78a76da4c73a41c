"""What the reference back office does with each delivery (the gateway client replaced by a
recorder): which actions, in which order, and which refusals are final."""

from __future__ import annotations

import pytest

from deploy.backoffice.gateway import DriveThrough, GatewayError


class Client:
    agency_code = "A"

    def __init__(self, refuse: dict[str, int] | None = None, status: str = "received"):
        self.actions: list[tuple[str, str, dict]] = []
        self.refuse = refuse or {}
        self.status = status  # what viewing the dossier says

    def view(self, code: str) -> dict:
        return {"code": code, "status": self.status}

    def act(self, code: str, action: str, body: dict | None = None):
        if action in self.refuse:
            raise GatewayError(self.refuse[action], {"code": "refused"})
        self.actions.append((code, action, body or {}))


def _delivery(event: str, **extra) -> dict:
    return {"delivery_id": "d", "dossier_code": "G1", "event_type": event, "agency_code": "A",
            "addressed_to": "A", "data": {}, "chain": None, **extra}


def _names(client: Client) -> list[str]:
    return [a for _, a, _ in client.actions]


def test_a_submission_goes_through_to_the_result():
    client = Client()
    DriveThrough(client)(_delivery("DossierSubmitted"))
    assert _names(client) == ["receive", "start-processing", "result", "return"]
    [doc] = client.actions[2][2]["documents"]
    assert doc["content_type"] == "application/pdf"


def test_a_supplement_request_waits_for_the_supplement():
    client = Client()
    drive = DriveThrough(client, ask_supplement=True)
    drive(_delivery("DossierSubmitted"))
    assert _names(client) == ["receive", "request-supplement"]
    drive(_delivery("DossierSupplemented"))
    assert _names(client)[2:] == ["start-processing", "result", "return"] and drive.finished == ["G1"]


def test_hand_over_follows_the_chain_named_in_the_delivery():
    client = Client()
    chain = {"procedure": {"code": "1.004194", "name": "Đăng ký thường trú"}, "agency": {"code": "P"}}
    DriveThrough(client, hand_over=True)(_delivery("DossierSubmitted", chain=chain))
    assert _names(client) == ["receive", "forward"]
    assert client.actions[1][2]["to_agency_code"] == "P" and "Đăng ký thường trú" in client.actions[1][2]["reason"]
    other = Client()  # without a chain, the same back office finishes the dossier itself
    DriveThrough(other, hand_over=True)(_delivery("DossierSubmitted"))
    assert _names(other) == ["receive", "start-processing", "result", "return"]


def test_a_hand_over_to_us_is_processed_and_its_echo_to_the_origin_only_noted():
    to_us, echo = Client(), Client()
    DriveThrough(to_us)(_delivery("DossierForwarded", data={"to_agency": {"code": "A"}, "from_agency_code": "O"}))
    assert _names(to_us) == ["start-processing", "result", "return"]  # never 'receive': it was received before
    DriveThrough(echo)(_delivery("DossierForwarded", data={"to_agency": {"code": "B"}, "from_agency_code": "A"}))
    assert echo.actions == []


@pytest.mark.parametrize("status", [404, 409, 422])
def test_a_refusal_by_the_gateway_is_final(status):
    drive = DriveThrough(Client(refuse={"receive": status}))
    drive(_delivery("DossierSubmitted"))  # taken: a withdrawn or moved-on dossier will not change
    assert drive.refused == [("G1", status)]


@pytest.mark.parametrize("status", [401, 429, 500, 503])
def test_a_passing_failure_makes_the_delivery_come_again(status):
    with pytest.raises(GatewayError):
        DriveThrough(Client(refuse={"receive": status}))(_delivery("DossierSubmitted"))


def test_the_client_signs_in_again_once_when_its_token_is_refused(monkeypatch):
    from deploy.backoffice.gateway import AgencyClient

    client = AgencyClient("http://gateway.invalid", "A", token="expired")
    seen: list[tuple[str, str | None]] = []

    def once(method, path, body, auth):
        if auth and client.token is None:  # as the real request does: sign in first
            client.sign_in()
        seen.append((path, client.token))
        if path == "/api/v1/dev/tokens":
            return {"access_token": "fresh"}
        if client.token != "fresh":
            raise GatewayError(401, {"code": "token_expired"})
        return {"status": "received"}

    monkeypatch.setattr(client, "_once", once)
    assert client.act("G1", "receive") == {"status": "received"}
    assert seen == [("/api/v1/agency/dossiers/G1/receive", "expired"), ("/api/v1/dev/tokens", None),
                    ("/api/v1/agency/dossiers/G1/receive", "fresh")]


def test_a_dossier_awaiting_its_fees_is_received_once_they_are_paid():
    client = Client(refuse={"receive": 409}, status="awaiting_payment")
    drive = DriveThrough(client)
    drive(_delivery("DossierSubmitted"))  # filed with its fees due: the gateway refuses to receive it yet
    assert client.actions == [] and drive.awaiting_payment == ["G1"] and drive.refused == []
    client.refuse, client.status = {}, "submitted"
    drive(_delivery("DossierPaymentReceived", data={"amount": 200000}))
    assert _names(client) == ["receive", "start-processing", "result", "return"] and drive.finished == ["G1"]


def test_a_payment_asked_for_during_processing_needs_no_intake():
    client = Client(status="processing")
    drive = DriveThrough(client)
    drive(_delivery("DossierPaymentReceived"))
    assert client.actions == [] and drive.refused == []


def test_a_conflict_other_than_awaiting_fees_stays_final():
    drive = DriveThrough(Client(refuse={"receive": 409}, status="withdrawn"))
    drive(_delivery("DossierSubmitted"))
    assert drive.refused == [("G1", 409)] and drive.awaiting_payment == []
