"""The dossier journey over HTTP through the gateway, signed in as real accounts.

Needs the identity test helpers (tests/support/accounts.py) to sign a citizen in and to get
agency staff tokens; the module is skipped until they exist.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid

import pytest

accounts = pytest.importorskip("tests.support.accounts")

PROCEDURE = "1.001193"


def _token(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("access_token") or value["token"]
    return value.access_token


def http(url: str, method: str = "GET", body=None, token: str | None = None, headers: dict | None = None,
         raw: bytes | None = None, content_type: str = "application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": content_type, **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, (json.loads(payload) if "json" in kind else payload), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null"), err.headers


@pytest.fixture(scope="module")
def people(gateway_url):
    return {"owner": _token(accounts.register_citizen(gateway_url)),
            "stranger": _token(accounts.register_citizen(gateway_url))}


@pytest.fixture(scope="module")
def filing(gateway_url):
    _, procedure, _ = http(f"{gateway_url}/api/v1/procedures/{PROCEDURE}")
    _, agencies, _ = http(f"{gateway_url}/api/v1/procedures/{PROCEDURE}/agencies")
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    docs = [{"requirement": d["id"], "name": f"{d['id']}.pdf", "content_type": "application/pdf",
             "content_base64": base64.b64encode(b"%PDF-1.4 " + d["id"].encode()).decode()}
            for d in procedure["required_documents"] if d["mandatory"]]
    area = {k: str(agencies[0][f"{k}_code"]) for k in ("province", "ward") if agencies[0].get(f"{k}_code")}
    return {"procedure_code": PROCEDURE, "agency_code": agencies[0]["code"],
            "applicant": {"full_name": "Phạm Thị D", **area}, "documents": docs}


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


@pytest.mark.parametrize(("change", "status"), [
    ({"documents": [{"requirement": "tp1", "name": "a.pdf", "content_type": "application/pdf",
                     "content_base64": "@@@"}]}, 422),
    ({"applicant": {"full_name": "x" * 10_000}}, 422),
    ({"applicant": {"full_name": "A\u0000B"}}, 422),
    ({"procedure_code": "9.999999"}, 422),
    ({"documents": []}, 422),
])
def test_hostile_submissions_over_http(gateway_url, people, filing, change, status):
    got, problem, _ = http(f"{gateway_url}/api/v1/dossiers", "POST", dict(filing, **change), people["owner"],
                           {"Idempotency-Key": uuid.uuid4().hex})
    assert got == status and problem["code"] in ("validation_failed", "invalid_document", "unknown_procedure",
                                                 "filing_incomplete")
