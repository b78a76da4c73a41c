"""The dossier journey over HTTP through the gateway, signed in as real accounts (the
identity test helpers in tests/support/accounts.py sign a citizen in and get agency staff
tokens)."""

from __future__ import annotations

import base64
import http.client as http_client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from tests.support import accounts
from tests.support.filings import first_office_filing
from tests.support.http import http

PROCEDURE = "1.001193"


def _token(value) -> str:
    """``register_citizen`` returns the token response (a dict); ``staff_token`` the token itself."""
    return value if isinstance(value, str) else value["access_token"]


@pytest.fixture(scope="module")
def people(gateway_url):
    return {"owner": _token(accounts.register_citizen(gateway_url)),
            "stranger": _token(accounts.register_citizen(gateway_url))}


@pytest.fixture(scope="module")
def filing(gateway_url):
    return first_office_filing(gateway_url, PROCEDURE, "Phạm Thị D")


def test_citizen_journey_with_agency_and_access_control(gateway_url, people, filing):
    base = f"{gateway_url}/api/v1"
    key = uuid.uuid4().hex
    status, created, headers = http(f"{base}/dossiers", "POST", filing, people["owner"], {"Idempotency-Key": key})
    assert status == 201, created
    code = created["code"]
    assert headers["Location"] == f"/api/v1/dossiers/{code}"
    status, again, _ = http(f"{base}/dossiers", "POST", filing, people["owner"], {"Idempotency-Key": key})
    assert status == 200 and again["code"] == code
    # another citizen: 404, exactly like an unknown code
    s1, p1, _ = http(f"{base}/dossiers/{code}", token=people["stranger"])
    s2, p2, _ = http(f"{base}/dossiers/{code[:-4]}9999", token=people["stranger"])
    assert s1 == s2 == 404 and p1["code"] == p2["code"] == "dossier_not_found"
    agency = filing["agency_code"]
    officer = _token(accounts.staff_token(gateway_url, "officer", agency))
    other = _token(accounts.staff_token(gateway_url, "officer", "NOT.THIS.ONE"))
    assert http(f"{base}/agency/dossiers/{code}", token=other)[0] == 404
    assert http(f"{base}/agency/dossiers/{code}/receive", "POST", {}, other)[0] == 404
    status, view, _ = http(f"{base}/agency/dossiers/{code}/receive", "POST", {}, officer)
    assert status == 200 and view["status"] == "received" and view["appointment_date"]
    status, problem, _ = http(f"{base}/agency/dossiers/{code}/receive", "POST", {}, officer)
    assert status == 409 and problem["code"] == "transition_not_allowed" and problem["state"] == "received"
    status, view, _ = http(f"{base}/agency/dossiers/{code}/request-supplement", "POST",
                           {"missing": ["Ảnh 4x6"], "reason": "Thiếu ảnh"}, officer)
    assert status == 200 and view["status"] == "supplement_requested"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    boundary = uuid.uuid4().hex
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"anh.png\"\r\n"
                 f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    status, doc, _ = http(f"{base}/dossiers/{code}/documents", "POST", token=people["owner"], raw=multipart,
                          content_type=f"multipart/form-data; boundary={boundary}")
    assert status == 201, doc
    status, view, _ = http(f"{base}/dossiers/{code}/supplement", "POST", {"document_ids": [doc["id"]]},
                           people["owner"])
    assert status == 200 and view["status"] == "supplemented"
    result = base64.b64encode(b"%PDF-1.7 giay khai sinh").decode()
    status, view, _ = http(f"{base}/agency/dossiers/{code}/result", "POST", {"documents": [
        {"name": "ket-qua.pdf", "content_type": "application/pdf", "content_base64": result}]}, officer)
    assert status == 200 and view["status"] == "result_ready"
    output = view["outputs"][0]["id"]
    status, content, headers = http(f"{base}/dossiers/{code}/documents/{output}", token=people["owner"])
    assert status == 200 and content == b"%PDF-1.7 giay khai sinh"
    assert http(f"{base}/dossiers/{code}/documents/{output}", token=people["stranger"])[0] == 404
    status, problem, _ = http(f"{base}/dossiers/{code}/withdraw", "POST", {}, people["owner"])
    assert status == 409
    status, mine, _ = http(f"{base}/dossiers?status=result_ready", token=people["owner"])
    assert status == 200 and [i["code"] for i in mine["items"]] == [code]
    status, full, _ = http(f"{base}/dossiers/{code}", token=people["owner"])
    assert [t["event"] for t in full["timeline"]][-1] == "DossierResultReady"
    status, public, _ = http(f"{base}/lookup/{code}")
    assert status == 200 and public["status"] == "result_ready" and "Phạm" not in json.dumps(public)


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"documents": [{"requirement": "tp1", "name": "a.pdf", "content_type": "application/pdf",
                     "content_base64": "@@@"}]}, 422, "invalid_document"),
    ({"applicant": {"full_name": "x" * 10_000}}, 422, "validation_failed"),
    ({"applicant": {"full_name": "A\u0000B"}}, 422, "validation_failed"),
    ({"procedure_code": "9.999999"}, 422, "unknown_procedure"),
    ({"documents": []}, 422, "filing_incomplete"),
])
def test_hostile_submissions_over_http(gateway_url, people, filing, change, status, code):
    got, problem, _ = http(f"{gateway_url}/api/v1/dossiers", "POST", dict(filing, **change), people["owner"],
                           {"Idempotency-Key": uuid.uuid4().hex})
    assert (got, problem["code"]) == (status, code), problem


def _submit(gateway_url: str, filing: dict, token: str) -> dict:
    status, created, _ = http(f"{gateway_url}/api/v1/dossiers", "POST", filing, token,
                              {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, created
    return created


BIG = "x" * 10_000


@pytest.mark.parametrize(("change", "field"), [
    ({"applicant": "Nguyễn Văn A"}, "applicant"),                          # wrong types
    ({"documents": {"requirement": "x"}}, "documents"),
    ({"form": [1, 2, 3]}, "form"),
    ({"procedure_code": 12345}, "procedure_code"),
    ({"applicant": {"full_name": "A", "address": BIG}}, "applicant.address"),  # 10 kB strings
    ({"form": {"note": BIG}}, "form"),
    ({"applicant": {"full_name": "A", "email": "not an email"}}, "applicant.email"),
    ({"applicant": {"full_name": "A", "date_of_birth": "31/12/1990"}}, "applicant.date_of_birth"),
])
def test_wrong_types_and_huge_values_name_the_field(gateway_url, people, filing, change, field):
    body = dict(filing, **change)
    got, problem, headers = http(f"{gateway_url}/api/v1/dossiers", "POST", body, people["owner"],
                                 {"Idempotency-Key": uuid.uuid4().hex})
    assert got == 422 and problem["code"] == "validation_failed", problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem["errors"]


@pytest.mark.parametrize(("raw", "content_type", "status", "code", "headers"), [
    (b"{not json", "application/json", 400, "invalid_json", {}),
    (b"\xff\xfe\x00garbage", "application/json", 400, "invalid_json", {}),
    (b"procedure_code=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type", {}),
    (None, "application/json", 422, "invalid_idempotency_key", {"Idempotency-Key": "k" * 300}),
])
def test_malformed_bodies_get_a_problem_not_a_500(gateway_url, people, filing, raw, content_type, status, code,
                                                  headers):
    data = raw if raw is not None else json.dumps(filing).encode()
    got, problem, answer = http(f"{gateway_url}/api/v1/dossiers", "POST", token=people["owner"], raw=data,
                                content_type=content_type, headers=headers)
    assert (got, problem["code"]) == (status, code), problem
    assert answer["Content-Type"].startswith("application/problem+json")


def test_a_huge_body_is_refused_before_it_is_read(gateway_url, people):
    """13 MB announced: the gateway answers 413 from the headers alone (the client need not send it)."""
    url = urllib.parse.urlsplit(gateway_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall((f"POST /api/v1/dossiers HTTP/1.1\r\nHost: {url.netloc}\r\n"
                      f"Authorization: Bearer {people['owner']}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {13 * 1024 * 1024}\r\n\r\n").encode() + b'{"applicant": "' + b"x" * 65536)
        response = http_client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert json.loads(response.read())["code"] == "payload_too_large"


def test_another_citizens_dossier_is_not_there(gateway_url, people, filing):
    base = f"{gateway_url}/api/v1"
    created = _submit(gateway_url, filing, people["owner"])
    code, doc = created["code"], created["inputs"][0]["id"]
    stranger = people["stranger"]
    unknown = f"{code[:-4]}9999"
    for target in (code, unknown):
        answers = [
            http(f"{base}/dossiers/{target}", token=stranger),
            http(f"{base}/dossiers/{target}/withdraw", "POST", {}, stranger),
            http(f"{base}/dossiers/{target}/supplement", "POST", {"note": "mine now"}, stranger),
            http(f"{base}/dossiers/{target}/documents/{doc}", token=stranger),
        ]
        assert [(s, p["code"]) for s, p, _ in answers] == [(404, "dossier_not_found")] * 4, (target, answers)
    assert code not in json.dumps(http(f"{base}/dossiers", token=stranger)[1])
    # the owner still has it, untouched
    status, view, _ = http(f"{base}/dossiers/{code}", token=people["owner"])
    assert status == 200 and view["status"] == "submitted" and len(view["timeline"]) == 1
    # the public lookup shows the status and nothing personal
    status, public, _ = http(f"{base}/lookup/{code}")
    assert status == 200 and set(public) >= {"code", "status", "procedure", "agency", "received_at",
                                             "appointment_date"}
    text = json.dumps(public, ensure_ascii=False)
    assert "Phạm" not in text and "owner" not in public and "applicant" not in public and "inputs" not in public


def test_agency_clock_pause_resume_extend_queue_and_time_travel(gateway_url, people, filing):
    base = f"{gateway_url}/api/v1"
    first = _submit(gateway_url, filing, people["owner"])["code"]
    second = _submit(gateway_url, filing, people["owner"])["code"]
    officer = _token(accounts.staff_token(gateway_url, "officer", filing["agency_code"]))
    status, received, _ = http(f"{base}/agency/dossiers/{second}/receive", "POST", {"note": "đủ hồ sơ"}, officer)
    assert status == 200 and received["appointment_date"]
    # hostile action bodies: a 4xx naming the problem, nothing written
    for action, body, expected in [
        ("pause", {}, 422), ("pause", {"reason": BIG}, 422), ("pause", {"reason": "a\u0007b"}, 422),
        ("extend", {"reason": "sorry", "new_date": "not-a-date"}, 422),
        ("extend", {"reason": "sorry", "new_date": "2099-01-01"}, 409),  # not overdue: nothing to apologise for
        ("explode", {}, 404), ("request-supplement", {"reason": "x", "missing": "photo"}, 422),
    ]:
        got, problem, _ = http(f"{base}/agency/dossiers/{second}/{action}", "POST", body, officer)
        assert got == expected, (action, body, problem)
    status, view, _ = http(f"{base}/agency/dossiers/{second}", token=officer)
    assert len(view["timeline"]) == 2
    status, paused, _ = http(f"{base}/agency/dossiers/{second}/pause", "POST", {"reason": "chờ xác minh"}, officer)
    assert status == 200 and paused["paused"] is True
    got, problem, _ = http(f"{base}/agency/dossiers/{second}/start-processing", "POST", {}, officer)
    assert got == 409 and problem["code"] == "transition_not_allowed" and problem["paused"] is True
    status, resumed, _ = http(f"{base}/agency/dossiers/{second}/resume", "POST", {}, officer)
    assert status == 200 and resumed["paused"] is False
    assert resumed["appointment_date"] >= received["appointment_date"]
    # the queue: the received one (with a date) before the one still waiting for reception
    status, queue, _ = http(f"{base}/agency/dossiers?page_size=100", token=officer)
    codes = [i["code"] for i in queue["items"]]
    assert status == 200 and codes.index(second) < codes.index(first)
    dates = [i["appointment_date"] for i in queue["items"] if i["appointment_date"]]
    assert dates == sorted(dates)
    other = _token(accounts.staff_token(gateway_url, "officer", "NOT.THIS.ONE"))
    assert second not in json.dumps(http(f"{base}/agency/dossiers", token=other)[1])
    # time travel: the dossier as it was before it was received
    at = [t["at"] for t in view["timeline"]]
    status, past, _ = http(f"{base}/dossiers/{second}?as_of={at[0].replace('+', '%2B')}", token=people["owner"])
    assert status == 200 and past["status"] == "submitted" and len(past["timeline"]) == 1
    got, problem, _ = http(f"{base}/dossiers/{second}?as_of=2026-01-01T10:00:00", token=people["owner"])
    assert got == 422  # a time without its offset is ambiguous
    got, problem, _ = http(f"{base}/dossiers/{second}?as_of=2000-01-01T00:00:00%2B07:00", token=people["owner"])
    assert got == 404 and problem["code"] == "not_yet_submitted"


def test_draft_journey_over_http(gateway_url, people, filing):
    base = f"{gateway_url}/api/v1"
    owner, stranger = people["owner"], people["stranger"]
    partial = {"procedure_code": filing["procedure_code"], "applicant": {"full_name": "Phạm Thị D"},
               "documents": filing["documents"][:1]}
    status, draft, headers = http(f"{base}/dossiers/drafts", "POST", partial, owner)
    assert status == 201 and draft["status"] == "open" and headers["Location"].endswith(draft["id"])
    status, listed, _ = http(f"{base}/dossiers/drafts", token=owner)
    assert status == 200 and draft["id"] in [i["id"] for i in listed["items"]]
    for answer in (http(f"{base}/dossiers/drafts/{draft['id']}", token=stranger),
                   http(f"{base}/dossiers/drafts/{draft['id']}/submit", "POST", {}, stranger),
                   http(f"{base}/dossiers/drafts/{draft['id']}", "DELETE", None, stranger),
                   http(f"{base}/dossiers/drafts/not-a-draft", token=owner)):
        assert answer[0] == 404 and answer[1]["code"] == "draft_not_found"
    got, problem, _ = http(f"{base}/dossiers/drafts/{draft['id']}/submit", "POST", {}, owner)
    # the partial filing names no agency yet: the boundary schema refuses it before any requirement is checked
    assert (got, problem["code"]) == (422, "validation_failed"), problem
    assert [e["field"] for e in problem["errors"]] == ["agency_code"], problem
    full = dict(filing, documents=filing["documents"][1:], document_ids=[d["id"] for d in draft["documents"]],
                version=draft["version"])
    status, saved, _ = http(f"{base}/dossiers/drafts/{draft['id']}", "PUT", full, owner)
    assert status == 200 and saved["version"] == 2 and len(saved["documents"]) == len(filing["documents"])
    got, problem, _ = http(f"{base}/dossiers/drafts/{draft['id']}", "PUT", full, owner)  # version 2 moved on
    assert got == 409 and problem["code"] == "draft_changed"
    status, dossier, headers = http(f"{base}/dossiers/drafts/{draft['id']}/submit", "POST", {}, owner)
    assert status == 201 and dossier["status"] == "submitted" and headers["Location"].endswith(dossier["code"])
    status, again, _ = http(f"{base}/dossiers/drafts/{draft['id']}/submit", "POST", {}, owner)
    assert status == 200 and again["code"] == dossier["code"]
    status, closed, _ = http(f"{base}/dossiers/drafts/{draft['id']}", token=owner)
    assert closed["status"] == "submitted" and closed["dossier_code"] == dossier["code"]
    got, _, _ = http(f"{base}/dossiers/drafts/{draft['id']}", "DELETE", None, owner)
    assert got == 409


def _multipart(field: str, filename: str, content_type: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(("part", "status", "code"), [
    (("file", "virus.exe", "application/x-msdownload", b"MZ\x90\x00" + b"\x00" * 64), 422, "invalid_document"),
    (("file", "fake.pdf", "application/pdf", b"<html><script>alert(1)</script>"), 422, "invalid_document"),
    (("file", "empty.pdf", "application/pdf", b""), 422, "invalid_document"),
    (("other", "a.pdf", "application/pdf", b"%PDF-1.4"), 422, "validation_failed"),
])
def test_hostile_uploads_over_http(gateway_url, people, filing, part, status, code):
    created = _submit(gateway_url, filing, people["owner"])
    body, content_type = _multipart(*part)
    got, problem, _ = http(f"{gateway_url}/api/v1/dossiers/{created['code']}/documents", "POST",
                           token=people["owner"], raw=body, content_type=content_type)
    assert (got, problem["code"]) == (status, code), problem


def test_uploading_to_someone_elses_dossier_is_not_found(gateway_url, people, filing):
    created = _submit(gateway_url, filing, people["owner"])
    body, content_type = _multipart("file", "a.pdf", "application/pdf", b"%PDF-1.4 mine now")
    got, problem, _ = http(f"{gateway_url}/api/v1/dossiers/{created['code']}/documents", "POST",
                           token=people["stranger"], raw=body, content_type=content_type)
    assert (got, problem["code"]) == (404, "dossier_not_found")
    got, problem, _ = http(f"{gateway_url}/api/v1/dossiers/{created['code']}/documents", "POST",
                           token=people["owner"], raw=b"--x\r\ngarbage", content_type="multipart/form-data; boundary=x")
    assert (got, problem["code"]) == (422, "validation_failed"), problem
