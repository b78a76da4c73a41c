"""A liên thông chain run by the agencies' own back offices: the birth registration's
result feeds the permanent-residence registration at the ward's police.

The router tells the ward office, with the submission, which procedure and agency come
next (from the catalog); the office's back office (``--hand-over``) receives the dossier
and hands it on; the router delivers the hand-over to the police and echoes it to the
office; the police's back office processes it and returns the result. The citizen follows
one dossier through both agencies.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import BackOffice, commune_agencies, filing, http, wait_until

pytestmark = pytest.mark.e2e


def test_back_offices_hand_a_dossier_along_its_chain(gateway_url, amqp_uri, accounts, procedure, tmp_path):
    base = f"{gateway_url}/api/v1"
    assert procedure["next_procedure"]["code"] == "1.004194"
    office = commune_agencies(gateway_url, 6)[5]
    police = office["code"].replace("-UBND", "-CA")
    first = BackOffice(office["code"], gateway_url, amqp_uri, tmp_path / "office.log", ask_supplement=False,
                       hand_over=True)
    second = BackOffice(police, gateway_url, amqp_uri, tmp_path / "police.log", ask_supplement=False)
    try:
        citizen = accounts.register_citizen(gateway_url)
        token = citizen["access_token"]
        status, created, _ = http(f"{base}/dossiers", "POST", filing(procedure, office), token,
                                  {"Idempotency-Key": uuid.uuid4().hex})
        assert status == 201, created
        code = created["code"]

        def view() -> dict:
            status, body, _ = http(f"{base}/dossiers/{code}", token=token)
            assert status == 200, body
            return body

        done = wait_until(lambda: (v := view())["status"] == "returned" and v, timeout=90,
                          what="the dossier to go along the chain to its result")
        assert [t["event"] for t in done["timeline"]] == [
            "DossierSubmitted", "DossierReceived", "DossierForwarded", "DossierProcessingStarted",
            "DossierResultReady", "DossierResultReturned"]
        by = {t["event"]: (t["actor"] or {}).get("agency_code") for t in done["timeline"]}
        assert (by["DossierReceived"], by["DossierForwarded"], by["DossierResultReturned"]) == \
            (office["code"], office["code"], police)
        assert done["agency"]["code"] == police
        [result] = done["outputs"]
        status, content, _ = http(f"{base}/dossiers/{code}/documents/{result['id']}", token=token)
        assert status == 200 and f"Result of {code}".encode() in content

        def intake(agency: str) -> list[tuple[str, str]]:
            status, body, _ = http(f"{base}/agency/deliveries?dossier_code={code}",
                                   token=accounts.staff_token(gateway_url, "agency_system", agency))
            assert status == 200, body
            return sorted((r["event_type"], r["status"]) for r in body["items"])

        # both agencies were told, and both confirmed what they took from their queues
        wait_until(lambda: intake(office["code"]) == [("DossierForwarded", "acknowledged"),
                                                      ("DossierSubmitted", "acknowledged")],
                   timeout=30, what="the office's deliveries")
        wait_until(lambda: intake(police) == [("DossierForwarded", "acknowledged")], timeout=30,
                   what="the police's deliveries")
        status, public, _ = http(f"{base}/lookup/{code}")
        assert status == 200 and public["status"] == "returned" and public["agency"]["code"] == police
        assert first.proc.poll() is None and second.proc.poll() is None
        assert "refused" not in first.output() and "failed" not in first.output()
    finally:
        first.stop()
        second.stop()
