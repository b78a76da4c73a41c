"""The portal's pages for API paths other parts of the system serve (VNeID sign-in,
payments) and for the gateway's 429, against a small stand-in gateway that answers exactly
as docs/API.md says. (The journey test checks the same pages hide themselves while the
real gateway answers 404.)"""

from __future__ import annotations

import base64
import json
import re
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.portal.conftest import csrf_of

DOSSIER = {"code": "D1", "status": "received", "procedure": {"code": "1.001193", "name": "Đăng ký khai sinh"},
           "agency": {"code": "W00004-UBND", "name": "Ủy ban nhân dân phường Ba Đình"},
           "applicant": {"full_name": "Nguyễn Văn Thử"}, "submitted_at": "2026-12-05T01:00:00+00:00",
           "received_at": "2026-12-05T02:00:00+00:00", "appointment_date": "2026-12-08", "inputs": [],
           "outputs": [], "receipts": [{"id": "r1", "name": "Biên lai"}], "timeline": [], "overdue": False}


QUEUE = [  # as the gateway orders it: due soonest first, whatever is overdue
    {"code": "Q-ON-TIME-1", "status": "received", "procedure_name": "A", "appointment_date": "2026-12-06",
     "submitted_at": "2026-12-01T01:00:00+00:00", "overdue": False},
    {"code": "Q-NEW", "status": "submitted", "procedure_name": "B", "appointment_date": None,
     "submitted_at": "2026-12-05T01:00:00+00:00", "overdue": False},
    {"code": "Q-OVERDUE-2", "status": "processing", "procedure_name": "C", "appointment_date": "2026-12-04",
     "submitted_at": "2026-11-20T01:00:00+00:00", "overdue": True},
    {"code": "Q-OVERDUE-1", "status": "received", "procedure_name": "D", "appointment_date": "2026-12-01",
     "submitted_at": "2026-11-10T01:00:00+00:00", "overdue": True},
]


class StandIn:
    """A gateway that knows a handful of paths; it records what it was sent."""

    def __init__(self):
        self.seen: list[tuple[str, str, dict, dict]] = []
        self.payments: list[dict] = [{"id": "p0", "amount": 8000, "status": "succeeded", "receipt_document_id": "r1"}]

    def __call__(self, environ, start_response):
        req = Request(environ)
        body = req.get_json(silent=True) or {}
        self.seen.append((req.method, req.path, dict(req.headers), body))
        status, payload, headers = self.route(req, body)
        resp = Response(json.dumps(payload), status=status, headers=headers,
                        content_type="application/problem+json" if status >= 400 else "application/json")
        return resp(environ, start_response)

    def route(self, req, body):
        key = (req.method, req.path)
        if key == ("GET", "/ready"):
            return 200, {}, {}
        if key == ("POST", "/api/v1/auth/vneid/start"):
            return 200, {"authorization_url": "https://vneid.example/authorize?state=s1", "state": "s1"}, {}
        if key == ("POST", "/api/v1/auth/vneid/complete"):
            if body == {"code": "good", "state": "s1"}:
                return 200, {"access_token": "at", "refresh_token": "rt", "expires_in": 900, "assurance_level": 2}, {}
            return 400, {"code": "invalid_grant", "message_vi": "Mã không hợp lệ."}, {}
        if key == ("POST", "/api/v1/auth/challenge"):
            return 201, {"challenge_id": "c1", "challenge": "portal-identity:login:abc", "expires_in": 300}, {}
        if key == ("POST", "/api/v1/auth/login") and body.get("method") == "certificate":
            if body.get("signature") == "cmF0ZQ==":
                return 429, {"code": "rate_limited", "message_vi": "Quá nhiều yêu cầu."}, {"Retry-After": "9"}
            return 503, {"code": "service_unavailable"}, {"Retry-After": "5"}
        if key == ("POST", "/api/v1/auth/staff/login"):
            return 200, {"login_id": "6f1c1a10-0000-4000-8000-000000000002"}, {}
        if key == ("POST", "/api/v1/auth/login/confirm") and body.get("otp") == "123456":
            return 200, {"access_token": "officer", "refresh_token": "ort", "expires_in": 900}, {}
        if key == ("POST", "/api/v1/auth/login/confirm") and body.get("otp") == "654321":
            return 200, {"access_token": "at", "refresh_token": "rt", "expires_in": 900}, {}  # a citizen's
        if req.headers.get("Authorization") == "Bearer officer":
            if key == ("GET", "/api/v1/me"):
                return 200, {"full_name": "Trần Thị Cán Bộ", "role": "officer", "agency_code": "W00004-UBND"}, {}
            if key == ("GET", "/api/v1/agency/dossiers"):
                return 200, {"items": QUEUE, "total": len(QUEUE), "page": 1, "page_size": 100}, {}
        if req.headers.get("Authorization") != "Bearer at" and req.path.startswith(("/api/v1/me", "/api/v1/doss")):
            return 401, {"code": "unauthorized"}, {}
        if key == ("GET", "/api/v1/me"):
            return 200, {"full_name": "Nguyễn Văn Thử", "identifier": "001099000001", "role": "citizen"}, {}
        if key == ("GET", "/api/v1/dossiers/D1"):
            return 200, DOSSIER, {}
        if key == ("GET", "/api/v1/dossiers/D1/payments"):
            return 200, {"due": [{"id": "f1", "name": "Lệ phí đăng ký", "amount": 8000}], "items": self.payments}, {}
        if key == ("POST", "/api/v1/dossiers/D1/payments"):
            idem = req.headers.get("Idempotency-Key")
            for p in self.payments:
                if p.get("key") == idem:
                    return 200, p, {}
            made = {"id": f"p{len(self.payments)}", "amount": 8000, "status": "pending", "key": idem,
                    "payment_url": f"https://pay.example/p{len(self.payments)}"}
            self.payments.append(made)
            return 201, made, {}
        if key == ("GET", "/api/v1/procedures"):
            return 429, {"code": "rate_limited", "message_vi": "Quá nhiều yêu cầu."}, {"Retry-After": "7"}
        return 404, {"code": "not_found"}, {}


@pytest.fixture(scope="module")
def stand_in():
    gateway = StandIn()
    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gateway.url = f"http://127.0.0.1:{server.server_port}"
    yield gateway
    server.shutdown()


@pytest.fixture
def client(stand_in):
    from portal.app import create_app
    from portal.config import Settings
    from portal.views import account

    account._vneid["checked"] = 0.0  # ask this gateway, not the one an earlier test asked
    return create_app(Settings(gateway_url=stand_in.url)).test_client()


def _vneid_sign_in(client) -> None:
    start = client.get("/dang-nhap/vneid?next=/ho-so/D1")
    assert start.status_code == 302 and start.headers["Location"] == "https://vneid.example/authorize?state=s1"
    back = client.get("/dang-nhap/vneid?code=good&state=s1")
    assert back.status_code == 302 and back.headers["Location"] == "/ho-so/D1"


def test_vneid_button_start_and_callback(client, stand_in):
    assert 'href="/dang-nhap/vneid' in client.get("/dang-nhap").get_data(as_text=True)
    _vneid_sign_in(client)
    start = next(s for s in stand_in.seen if s[1] == "/api/v1/auth/vneid/start")
    assert start[3] == {"redirect_uri": "http://localhost/dang-nhap/vneid"}
    account_page = client.get("/tai-khoan")
    assert account_page.status_code == 200 and "001099000001" in account_page.get_data(as_text=True)
    assert "at" not in {c.value for c in client._cookies.values()}  # the token never reaches the browser


def test_vneid_refused_code_says_so(client):
    client.get("/dang-nhap/vneid")
    resp = client.get("/dang-nhap/vneid?code=forged&state=s1")
    assert resp.status_code == 400 and "Đăng nhập bằng VNeID không thành công" in resp.get_data(as_text=True)
    assert client.get("/tai-khoan").status_code == 302


def test_payments_section_and_one_payment_per_double_click(client, stand_in):
    _vneid_sign_in(client)
    html = client.get("/ho-so/D1").get_data(as_text=True)
    assert "Lệ phí đăng ký: 8.000 đ" in html and "Đã thanh toán" in html
    assert 'href="/ho-so/D1/tai-lieu/r1"' in html  # the dossier holds receipt r1
    stand_in.payments.append({"id": "p9", "amount": 2000, "status": "succeeded", "receipt_document_id": "r9"})
    html = client.get("/ho-so/D1").get_data(as_text=True)
    assert "tai-lieu/r9" not in html  # not linked before the dossier holds it (it would be a 404)
    stand_in.payments.pop()
    before = len(stand_in.payments)
    first = client.post("/ho-so/D1/thanh-toan", data={"csrf_token": csrf_of(html), "fee_id": "f1"})
    second = client.post("/ho-so/D1/thanh-toan", data={"csrf_token": csrf_of(html), "fee_id": "f1"})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"] == f"https://pay.example/p{before}"
    assert len(stand_in.payments) == before + 1
    posts = [s for s in stand_in.seen if s[:2] == ("POST", "/api/v1/dossiers/D1/payments")]
    assert posts[-1][2]["Idempotency-Key"] == posts[-2][2]["Idempotency-Key"] and posts[-1][3] == {"fee_ids": ["f1"]}
    stand_in.payments[-1]["status"] = "failed"  # a failed payment may be tried again: a new key
    third = client.post("/ho-so/D1/thanh-toan", data={"csrf_token": csrf_of(html)})
    assert third.headers["Location"] == f"https://pay.example/p{before + 1}"


def test_gateway_rate_limit_is_shown_as_a_page(client):
    resp = client.get("/thu-tuc?q=khai+sinh")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 429 and "Quá nhiều yêu cầu" in text and "7 giây" in text


def test_desk_queue_puts_overdue_dossiers_first(client):
    html = client.get("/mot-cua/dang-nhap").get_data(as_text=True)
    assert client.post("/mot-cua/dang-nhap", data={"csrf_token": csrf_of(html), "username": "canbo01",
                                                   "password": "x"}).status_code == 302
    done = client.post("/mot-cua/dang-nhap/ma-xac-thuc", data={"csrf_token": csrf_of(html), "otp": "123456"})
    assert done.status_code == 302 and done.headers["Location"] == "/mot-cua/"
    queue = client.get("/mot-cua/").get_data(as_text=True)
    order = re.findall(r'href="/mot-cua/ho-so/([^"]+)"', queue)
    assert order == ["Q-OVERDUE-1", "Q-OVERDUE-2", "Q-ON-TIME-1", "Q-NEW"]
    assert queue.count('class="overdue"') == 2


def test_desk_signs_in_nobody_on_a_wrong_code_or_a_citizen_account(client):
    html = client.get("/mot-cua/dang-nhap").get_data(as_text=True)
    client.post("/mot-cua/dang-nhap", data={"csrf_token": csrf_of(html), "username": "canbo01", "password": "x"})
    done = client.post("/mot-cua/dang-nhap/ma-xac-thuc", data={"csrf_token": csrf_of(html), "otp": "000000"})
    assert done.status_code == 422 and "Mã xác thực không đúng" in done.get_data(as_text=True)
    assert client.get("/mot-cua/").status_code == 302
    citizen = client.post("/mot-cua/dang-nhap/ma-xac-thuc", data={"csrf_token": csrf_of(html), "otp": "654321"})
    assert citizen.status_code == 403 and "dành cho cán bộ" in citizen.get_data(as_text=True)
    assert client.get("/mot-cua/").status_code == 302


def ref_of(html: str) -> str:
    found = re.search(r'name="challenge_ref" value="([^"]+)"', html)
    assert found, "the page names no challenge"
    return found.group(1)


def test_certificate_sign_in_shows_the_rate_limit_and_an_outage_as_pages(client, stand_in):
    pem = ("-----BEGIN CERTIFICATE-----\n" + base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
           + "\n-----END CERTIFICATE-----\n")
    html = client.get("/dang-nhap?cach=chung-thu-so").get_data(as_text=True)
    assert "portal-identity:login:abc" in html and 'value="c1"' not in html  # the id stays in the session
    form = {"csrf_token": csrf_of(html), "challenge_ref": ref_of(html), "certificate_pem": pem}
    resp = client.post("/dang-nhap?cach=chung-thu-so", data={**form, "signature": "cmF0ZQ=="})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 429 and "Quá nhiều yêu cầu" in text and "9 giây" in text
    html = client.get("/dang-nhap?cach=chung-thu-so").get_data(as_text=True)  # the spent challenge is replaced
    assert ref_of(html) != form["challenge_ref"]
    resp = client.post("/dang-nhap?cach=chung-thu-so",
                       data={**form, "challenge_ref": ref_of(html), "signature": "Ym9vbQ=="})
    assert resp.status_code == 503 and "Dịch vụ tạm thời gián đoạn" in resp.get_data(as_text=True)
    sent = [s for s in stand_in.seen if s[:2] == ("POST", "/api/v1/auth/login")][-1][3]
    assert sent == {"method": "certificate", "certificate_pem": pem, "chain_pem": [], "challenge_id": "c1",
                    "signature": "Ym9vbQ=="}
    assert client.get("/tai-khoan").status_code == 302
