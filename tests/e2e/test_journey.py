"""The whole journey on the running system, through the gateway only, with the reference back
office running as the agencies' own processes.

A citizen registers, finds the birth-registration procedure without diacritics, picks two
commune offices, and files one dossier with each. An operator has routed the second office
over the signed HTTP callback (``services.router.ops route``); the first keeps its AMQP
queue. Each back office receives its dossier, asks for a supplement, the citizen supplies
it, the back office processes, attaches the result and returns it. The citizen then sees the
timeline and downloads the result; anyone sees the status by code, nothing personal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.e2e.conftest import (
    PROCEDURE,
    ROOT,
    BackOffice,
    commune_agencies,
    filing,
    http,
    pdf,
    quote,
    wait_until,
)

pytestmark = pytest.mark.e2e

JOURNEY = ["DossierSubmitted", "DossierReceived", "SupplementRequested", "DossierSupplemented",
           "DossierProcessingStarted", "DossierResultReady", "DossierResultReturned"]


@pytest.fixture(scope="module")
def offices(system, gateway_url, amqp_uri, tmp_path_factory):
    """(queue office, callback office), both running, the second routed over HTTP."""
    logs = tmp_path_factory.mktemp("backoffice")
    by_queue, by_callback = commune_agencies(gateway_url, 2)
    secret = system.extra_env["AGENCY_SECRET_E2E"]
    queue_office = BackOffice(by_queue["code"], gateway_url, amqp_uri, logs / "queue.log")
    callback_office = BackOffice(by_callback["code"], gateway_url, amqp_uri, logs / "callback.log",
                                 callback_secret=secret)
    try:
        routed = subprocess.run(
            [sys.executable, "-m", "services.router.ops", "route", by_callback["code"], "--channel", "http",
             "--endpoint", callback_office.callback_url, "--secret-ref", "AGENCY_SECRET_E2E",
             "--amqp-uri", amqp_uri, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert routed.returncode == 0, routed.stderr
        assert json.loads(routed.stdout)["channel"] == "http" and secret not in routed.stdout
        yield (by_queue, queue_office), (by_callback, callback_office)
    finally:
        queue_office.stop()
        callback_office.stop()
        subprocess.run([sys.executable, "-m", "services.router.ops", "route", by_callback["code"], "--channel",
                        "amqp", "--amqp-uri", amqp_uri], cwd=ROOT, capture_output=True, timeout=60)


def test_citizen_files_agencies_handle_over_both_channels_citizen_gets_the_result(
        gateway_url, accounts, procedure, offices):
    base = f"{gateway_url}/api/v1"
    citizen = accounts.register_citizen(gateway_url)
    token = citizen["access_token"]
    status, me, _ = http(f"{base}/me", token=token)
    assert status == 200, me

    # find the procedure the way a citizen types it: no diacritics, any case
    status, found, _ = http(f"{base}/procedures?q={quote('dang ky KHAI SINH')}")
    assert status == 200 and PROCEDURE in [p["code"] for p in found["items"]], found
    assert [d for d in procedure["required_documents"] if d["mandatory"]]

    # one dossier with each office (the applicant's ward decides which office may take it)
    (queue_agency, queue_office), (callback_agency, callback_office) = offices
    codes: dict[str, str] = {}
    for agency in (queue_agency, callback_agency):
        key = uuid.uuid4().hex
        status, created, headers = http(f"{base}/dossiers", "POST", filing(procedure, agency), token,
                                        {"Idempotency-Key": key})
        assert status == 201, created
        assert created["status"] == "submitted" and created["agency"]["code"] == agency["code"]
        codes[agency["code"]] = created["code"]

    def view(code: str) -> dict:
        status, body, _ = http(f"{base}/dossiers/{code}", token=token)
        assert status == 200, body
        return body

    # each back office received its dossier (queue / callback) and asked for a supplement
    for code in codes.values():
        wait_until(lambda c=code: view(c)["status"] == "supplement_requested", timeout=90,
                   what=f"{code}: received and supplement requested")
    for code in codes.values():
        status, answered, _ = http(f"{base}/dossiers/{code}/supplement", "POST", {
            "note": "Bổ sung bản sao có chứng thực",
            "documents": [{"name": "ban-sao.pdf", "content_type": "application/pdf",
                           "content_base64": pdf(f"certified copy for {code}")}]}, token)
        assert status == 200 and answered["status"] == "supplemented", answered

    # the back offices finish: processing, result, returned
    for code in codes.values():
        wait_until(lambda c=code: view(c)["status"] == "returned", timeout=90, what=f"{code}: result returned")

    for agency_code, code in codes.items():
        full = view(code)
        assert [t["event"] for t in full["timeline"]] == JOURNEY
        by_agency = [t for t in full["timeline"] if t["event"] != "DossierSubmitted" and
                     t["event"] != "DossierSupplemented"]
        assert {(t["actor"]["kind"], t["actor"]["agency_code"]) for t in by_agency} == \
            {("agency_system", agency_code)}
        assert full["appointment_date"] and full["received_at"]
        assert any(d["name"] == "ban-sao.pdf" for d in full["inputs"])
        [result] = full["outputs"]
        status, content, headers = http(f"{base}/dossiers/{code}/documents/{result['id']}", token=token)
        assert status == 200 and headers["Content-Type"].startswith("application/pdf")
        assert content.startswith(b"%PDF-") and f"Result of {code}".encode() in content

        # anyone can look the status up by code; nothing personal is shown
        status, public, _ = http(f"{base}/lookup/{code}")
        assert status == 200 and public["status"] == "returned" and public["agency"]["code"] == agency_code
        text = json.dumps(public, ensure_ascii=False)
        assert "Nguyễn Thị Thử" not in text and citizen["cccd"] not in text and citizen["phone"] not in text

    # how each dossier travelled: over the agency's queue, or its signed callback; all confirmed
    for agency_code, channel, office in ((queue_agency["code"], "amqp", queue_office),
                                         (callback_agency["code"], "http", callback_office)):
        agency_token = accounts.staff_token(gateway_url, "agency_system", agency_code)

        def intake(agency_code=agency_code, agency_token=agency_token) -> list[tuple]:
            status, body, _ = http(f"{base}/agency/deliveries?dossier_code={codes[agency_code]}", token=agency_token)
            assert status == 200, body
            return sorted((r["event_type"], r["channel"], r["status"]) for r in body["items"])

        expected = [("DossierSubmitted", channel, "acknowledged"), ("DossierSupplemented", channel, "acknowledged")]
        wait_until(lambda f=intake: f() == expected, timeout=30, what=f"{agency_code}: deliveries confirmed")
        assert office.proc.poll() is None, office.output()
    assert "callbacks at" in callback_office.output()
