"""Fee exemptions through the running system: a citizen files the judicial record certificate
(2.000488) declaring an exemption the fee lists, so nothing is due and the dossier does not wait;
the agency disputes it, the fee is requested and paid on the usual path. Hostile declarations
and disputes are refused with a clear 4xx and write nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.payment.conftest import FEE, FEE_PROCEDURE, PROVINCE, Citizen, agency_token, complete, wait_until
from tests.support.accounts import staff_token
from tests.support.filings import complete_filing
from tests.support.http import http

pytestmark = pytest.mark.e2e

CHILD = [{"fee_id": "le-phi", "exemption": "Trẻ em"}]


def file_declaring(citizen: Citizen, fee_exemptions) -> tuple[int, dict]:
    _, procedure = citizen.get(f"/api/v1/procedures/{FEE_PROCEDURE}")
    _, agencies = citizen.get(f"/api/v1/procedures/{FEE_PROCEDURE}/agencies?province={PROVINCE}")
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    body = dict(complete_filing(procedure, agencies[0], "Nguyễn Bé Con"), fee_exemptions=fee_exemptions)
    return citizen.post("/api/v1/dossiers", body, headers={"Idempotency-Key": str(uuid.uuid4())})


def save_draft(citizen: Citizen, fee_exemptions, draft_id: str | None = None) -> tuple[int, dict]:
    """A complete filing of the fee procedure saved as a draft declaring ``fee_exemptions``."""
    _, procedure = citizen.get(f"/api/v1/procedures/{FEE_PROCEDURE}")
    _, agencies = citizen.get(f"/api/v1/procedures/{FEE_PROCEDURE}/agencies?province={PROVINCE}")
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    body = dict(complete_filing(procedure, agencies[0], "Nguyễn Bé Con"), fee_exemptions=fee_exemptions)
    if draft_id is None:
        return citizen.post("/api/v1/dossiers/drafts", body)
    status, answer, _ = http(f"{citizen.url}/api/v1/dossiers/drafts/{draft_id}", "PUT", body, token=citizen.token)
    return status, answer


def dispute(gateway_url: str, code: str, token: str, body: dict, request_id: str | None = None) -> tuple[int, dict]:
    status, answer, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/dispute-exemption", "POST", body,
                             token=token, headers={"X-Request-ID": request_id or str(uuid.uuid4())})
    return status, answer


def test_a_declared_exemption_is_not_charged_until_the_agency_disputes_it(gateway_url, citizen):
    status, dossier = file_declaring(citizen, CHILD)
    assert status == 201, dossier
    code = dossier["code"]
    assert dossier["status"] == "submitted" and dossier["payment_requests"] == []
    [exempt] = dossier["fee_exemptions"]
    assert exempt["status"] == "exempt" and exempt["exemption"] == "Trẻ em" and exempt["amount"] == FEE
    view = citizen.payments(code)
    assert view["due"] == [] and view["items"] == [] and view["exemptions"][0]["status"] == "exempt"

    officer = agency_token(gateway_url, dossier)
    status, seen, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}", token=officer)
    assert status == 200 and seen["fee_exemptions"][0]["exemption"] == "Trẻ em"
    request_id = str(uuid.uuid4())
    status, disputed = dispute(gateway_url, code, officer, {"fee_id": "le-phi", "reason": "Người nộp đã 30 tuổi"},
                               request_id)
    assert status == 200, disputed
    assert disputed["status"] == "awaiting_payment" and disputed["fee_exemptions"][0]["status"] == "disputed"
    status, again = dispute(gateway_url, code, officer, {"fee_id": "le-phi", "reason": "Người nộp đã 30 tuổi"},
                            request_id)
    assert status == 200 and again["version"] == disputed["version"]  # the same request: applied once
    status, twice = dispute(gateway_url, code, officer, {"fee_id": "le-phi", "reason": "lần hai"})
    assert status == 409 and twice["code"] == "no_exemption_to_dispute"

    [due] = citizen.due_now(code)
    assert due["amount"] == FEE and due["blocking"] and due["fees"][0]["id"] == "le-phi"
    view = citizen.payments(code)
    assert view["exemptions"][0]["status"] == "disputed" and view["exemptions"][0]["request_id"] == due["id"]
    assert view["exemptions"][0]["reason"] == "Người nộp đã 30 tuổi"
    payment = citizen.pay(code)
    complete(gateway_url, payment["id"], "success")
    paid = wait_until(lambda: (d := citizen.dossier(code))["status"] == "submitted" and d, what="dossier paid")
    events = [e["event"] for e in paid["timeline"]]
    assert events[:5] == ["DossierSubmitted", "FeeExemptionDeclared", "FeeExemptionDisputed",
                          "DossierPaymentRequested", "DossierPaymentReceived"]
    receipt = wait_until(lambda: (p := citizen.payments(code)["items"][0])["receipt_document_id"] and p,
                         what="the receipt")
    assert receipt["status"] == "succeeded" and citizen.payments(code)["due"] == []

    def fed() -> list:
        found, after = [], 0
        while True:
            status, page, _ = http(f"{gateway_url}/api/v1/agency/events?after={after}&limit=1000", token=officer)
            assert status == 200, page
            found += [(e["event_type"], e["channels"]) for e in page["items"] if e["dossier_code"] == code]
            if not page["items"]:
                return found
            after = page["last_position"]

    feed = wait_until(lambda: (f := fed()) and ("FeeExemptionDisputed", ["payments"]) in f and f,
                      what="the exemption events in the agency's feed")
    assert ("FeeExemptionDeclared", ["payments"]) in feed


def test_hostile_declarations_are_refused_and_file_nothing(gateway_url, citizen):
    cases = [
        ([{"fee_id": "khong-co", "exemption": "Trẻ em"}], "fee_exemptions.0.fee_id"),
        ([{"fee_id": "le-phi", "exemption": "Sinh viên"}], "fee_exemptions.0.exemption"),
        ([{"fee_id": "le-phi", "exemption": "x" * 5000}], "fee_exemptions.0.exemption"),
        ([{"fee_id": "le-phi", "exemption": "Trẻ em\u0000"}], "fee_exemptions.0.exemption"),
        ([{"fee_id": "le-phi"}], "fee_exemptions.0.exemption"),
        (CHILD * 2, "fee_exemptions"),
        ("Trẻ em", "fee_exemptions"),
    ]
    for claims, field in cases:
        status, body = file_declaring(citizen, claims)
        assert status == 422, (claims, body)
        fields = {e.get("field") for e in body.get("errors") or []}
        assert any(f and f.startswith(field) for f in fields), (claims, body)
    status, mine = citizen.get("/api/v1/dossiers")
    assert status == 200 and mine["total"] == 0


def test_hostile_disputes_are_refused_and_write_nothing(gateway_url, citizen):
    status, dossier = file_declaring(citizen, CHILD)
    assert status == 201, dossier
    code = dossier["code"]
    officer = agency_token(gateway_url, dossier)
    stranger = staff_token(gateway_url, "officer", "H29.99.DEFINITELY-NOT")
    assert dispute(gateway_url, code, stranger, {"fee_id": "le-phi", "reason": "x"})[0] == 404
    status, body = dispute(gateway_url, code, officer, {"fee_id": "khong-co", "reason": "x"})
    assert status == 409 and body["code"] == "no_exemption_to_dispute"
    for junk in ({"fee_id": "le-phi"}, {"reason": "x"}, {"fee_id": "le-phi", "reason": "x" * 3000},
                 {"fee_id": "y" * 500, "reason": "x"}, {"fee_id": "le-phi", "reason": "\u0007bell"}, []):
        status, body = dispute(gateway_url, code, officer, junk)
        assert 400 <= status < 500 and status != 404, (junk, status, body)
    status, body, _ = http(f"{gateway_url}/api/v1/agency/dossiers/{code}/dispute-exemption", "POST",
                           {"fee_id": "le-phi", "reason": "x"}, token=citizen.token)
    assert status in (401, 403)
    after = citizen.dossier(code)
    assert after["status"] == "submitted" and after["version"] == dossier["version"]
    assert after["fee_exemptions"][0]["status"] == "exempt"
    assert citizen.payments(code)["due"] == []


def test_the_openapi_document_names_the_dispute(gateway_url):
    status, spec, _ = http(f"{gateway_url}/openapi.json")
    assert status == 200
    assert "post" in spec["paths"]["/api/v1/agency/dossiers/{code}/dispute-exemption"]


def test_a_draft_keeps_its_exemption_and_filing_it_declares_it(gateway_url, citizen):
    status, draft = save_draft(citizen, CHILD)
    assert status == 201, draft
    assert draft["fee_exemptions"] == CHILD
    status, read = citizen.get(f"/api/v1/dossiers/drafts/{draft['id']}")
    assert status == 200 and read["fee_exemptions"] == CHILD
    status, dossier = citizen.post(f"/api/v1/dossiers/drafts/{draft['id']}/submit")
    assert status == 201, dossier
    code = dossier["code"]
    assert dossier["status"] == "submitted" and dossier["payment_requests"] == []  # nothing to wait for
    [exempt] = dossier["fee_exemptions"]
    assert exempt["status"] == "exempt" and exempt["exemption"] == "Trẻ em" and exempt["amount"] == FEE
    assert [e["event"] for e in citizen.dossier(code)["timeline"]][:2] == ["DossierSubmitted", "FeeExemptionDeclared"]
    view = citizen.payments(code)
    assert view["due"] == [] and view["exemptions"][0]["status"] == "exempt"
    # saved again without the exemption (each save is the whole draft): the fee is due as usual
    status, other = save_draft(citizen, CHILD)
    assert status == 201, other
    status, resaved = save_draft(citizen, [], other["id"])
    assert status == 200 and resaved["fee_exemptions"] == [] and resaved["version"] == 2
    status, charged = citizen.post(f"/api/v1/dossiers/drafts/{other['id']}/submit")
    assert status == 201 and charged["status"] == "awaiting_payment" and charged["fee_exemptions"] == []
    [due] = citizen.due_now(charged["code"])
    assert due["amount"] == FEE


def test_a_draft_with_a_bad_exemption_is_refused_at_filing_and_files_nothing(gateway_url, citizen):
    status, refused = save_draft(citizen, CHILD * 2)  # the same fee twice: refused when saved
    assert status == 422, refused
    assert "fee_exemptions" in {e.get("field") for e in refused.get("errors") or []}, refused
    status, draft = save_draft(citizen, [{"fee_id": "khong-co", "exemption": "Trẻ em"}])
    assert status == 201, draft  # a draft is not checked against the procedure until it is filed
    status, problem = citizen.post(f"/api/v1/dossiers/drafts/{draft['id']}/submit")
    assert status == 422 and problem["code"] == "filing_incomplete", problem
    assert "fee_exemptions.0.fee_id" in {e.get("field") for e in problem.get("errors") or []}, problem
    status, mine = citizen.get("/api/v1/dossiers")
    assert status == 200 and mine["total"] == 0
    status, still = citizen.get(f"/api/v1/dossiers/drafts/{draft['id']}")
    assert status == 200 and still["status"] == "open" and still["version"] == 1
