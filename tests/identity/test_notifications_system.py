"""Applicants hear of their dossier's steps by SMS, through the running system: a citizen files
(SMS with the code), the agency asks for a supplement (SMS with the deadline) and attaches the
result (SMS); an opted-out citizen gets none; the same event published twice to identity's
queue sends one SMS; ``/api/v1/me/notifications`` reads and sets the choice."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kombu import Connection, Exchange, Producer

from tests.support import accounts, filings

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PROCEDURE = "1.001193"  # Đăng ký khai sinh, commune level


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _notices(gateway_url: str, phone: str, code: str) -> list[str]:
    """The SMS about ``code`` the local stand-in sent to ``phone``, oldest first."""
    outbox = accounts.call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={phone}&limit=200")
    return [m["body"] for m in reversed(outbox["items"]) if code in m["body"]]


def _file(gateway_url: str, citizen: dict) -> tuple[str, str]:
    filing = filings.first_office_filing(gateway_url, PROCEDURE, citizen["full_name"])
    created = accounts.call(f"{gateway_url}/api/v1/dossiers", "POST", filing, citizen["access_token"])
    return created["code"], filing["agency_code"]


def _act(gateway_url: str, token: str, code: str, action: str, body: dict | None = None) -> dict:
    return accounts.call(f"{gateway_url}/api/v1/agency/dossiers/{code}/{action}", "POST", body or {}, token)


@pytest.fixture(scope="module")
def filed(gateway_url) -> dict:
    citizen = accounts.register_citizen(gateway_url)
    code, agency = _file(gateway_url, citizen)
    return {"citizen": citizen, "code": code, "officer": accounts.staff_token(gateway_url, "officer", agency)}


def test_the_citizen_gets_an_sms_with_the_code_then_the_supplement_deadline_then_the_result(gateway_url, filed):
    citizen, code, officer = filed["citizen"], filed["code"], filed["officer"]
    phone = citizen["phone"]
    [first] = _wait(lambda: _notices(gateway_url, phone, code), what="the filing SMS")
    assert "da duoc nop" in first and first.isascii() and len(first) <= 160

    _act(gateway_url, officer, code, "receive")
    _wait(lambda: len(_notices(gateway_url, phone, code)) >= 2, what="the reception SMS")
    _act(gateway_url, officer, code, "request-supplement",
         {"reason": f"Thiếu giấy của {citizen['full_name']}", "missing": ["Giấy chứng sinh"],
          "due_date": "2031-03-17"})
    texts = _wait(lambda: (t := _notices(gateway_url, phone, code)) and len(t) >= 3 and t, what="the supplement SMS")
    assert "bo sung" in texts[2] and "17/03/2031" in texts[2]
    assert citizen["full_name"] not in texts[2] and citizen["cccd"] not in texts[2] and "Thiếu" not in texts[2]

    accounts.call(f"{gateway_url}/api/v1/dossiers/{code}/supplement", "POST", {"note": "da bo sung"},
                  citizen["access_token"])
    _act(gateway_url, officer, code, "result", {"documents": [filings.document("result", "giay khai sinh")]})
    texts = _wait(lambda: (t := _notices(gateway_url, phone, code)) and len(t) >= 4 and t, what="the result SMS")
    assert "da co ket qua" in texts[3]
    assert len(texts) == 4  # supplemented and processing steps send nothing
    for text in texts:
        assert citizen["phone"] not in text and citizen["cccd"] not in text


def test_an_opted_out_citizen_gets_no_sms(gateway_url):
    quiet, control = accounts.register_citizen(gateway_url), accounts.register_citizen(gateway_url)
    base = f"{gateway_url}/api/v1/me/notifications"
    assert accounts.call(base, token=quiet["access_token"])["notify_sms"] is True
    changed = accounts.call(base, "PUT", {"notify_sms": False}, quiet["access_token"])
    assert changed == {"notify_sms": False, "sms_to": quiet["phone"][:2] + "******" + quiet["phone"][-2:]}
    assert accounts.call(base, token=quiet["access_token"])["notify_sms"] is False
    quiet_code, _ = _file(gateway_url, quiet)
    control_code, _ = _file(gateway_url, control)
    _wait(lambda: _notices(gateway_url, control["phone"], control_code), what="the control citizen's SMS")
    time.sleep(1)
    assert _notices(gateway_url, quiet["phone"], quiet_code) == []


def test_the_preference_is_validated_and_only_for_applicants(gateway_url):
    citizen = accounts.register_citizen(gateway_url)
    base = f"{gateway_url}/api/v1/me/notifications"
    for body in ({}, {"notify_sms": "maybe"}, {"notify_sms": True, "other": 1}):
        with pytest.raises(accounts.GatewayError) as refused:
            accounts.call(base, "PUT", body, citizen["access_token"])
        assert refused.value.status == 422
    officer = accounts.staff_token(gateway_url, "officer", "G01.TEST")
    with pytest.raises(accounts.GatewayError) as forbidden:
        accounts.call(base, token=officer)
    assert forbidden.value.status == 403


def test_the_same_event_delivered_twice_to_identitys_queue_sends_one_sms(gateway_url, filed, amqp_uri):
    citizen, code = filed["citizen"], filed["code"]
    _wait(lambda: _notices(gateway_url, citizen["phone"], code), what="the filing SMS")
    queue = "evt-dossier-DeadlineExtended--identity.notify_deadline_extended"
    envelope = {"event_id": str(uuid.uuid4()), "event_type": "DeadlineExtended", "schema_version": 1,
                "stream_id": f"dossier-{code}", "stream_type": "dossier", "correlation_id": None,
                "actor": {"kind": "system", "id": "system"},
                "data": {"code": code, "agency_code": "X", "previous_date": None, "new_date": "2032-08-09",
                         "reason": "Xin loi"}}
    with Connection(amqp_uri) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(""))
        for _ in range(2):
            producer.publish(json.dumps(envelope), routing_key=queue, content_type="application/json",
                             content_encoding="utf-8")

        def drained() -> bool:
            channel = conn.channel()
            try:
                return channel.queue_declare(queue=queue, passive=True).message_count == 0
            finally:
                channel.close()

        _wait(lambda: [t for t in _notices(gateway_url, citizen["phone"], code) if "09/08/2032" in t],
              what="the extension SMS")
        _wait(drained, what="both copies taken")
    time.sleep(1.5)
    assert len([t for t in _notices(gateway_url, citizen["phone"], code) if "09/08/2032" in t]) == 1
