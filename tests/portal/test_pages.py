"""Hostile and edge input through the portal's pages (Flask's test client, real gateway):
each gets a clear message in Vietnamese and changes nothing."""

from __future__ import annotations

import io
import re

import pytest

from tests.portal.conftest import code_after, csrf_of, new_officer, sms_count
from tests.support.accounts import call, random_person, register_citizen, sign_in, staff_token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PROCEDURE = "1.001193"  # Đăng ký khai sinh: three mandatory documents
AGENCY = "W00004-UBND"  # Ủy ban nhân dân phường Ba Đình (Hà Nội)
PDF = b"%PDF-1.4\n% test\n%%EOF\n"


def page(client, path: str) -> str:
    resp = client.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    return resp.get_data(as_text=True)


def signed_in_client(portal_app, gateway_url):
    """A test client signed in through the portal's own sign-in pages, and its account."""
    person = register_citizen(gateway_url)
    client = portal_app.test_client()
    html = page(client, "/dang-nhap")
    before = sms_count(gateway_url, person["phone"])
    resp = client.post("/dang-nhap", data={"csrf_token": csrf_of(html), "id_number": person["cccd"],
                                           "password": person["password"]})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/dang-nhap/ma-xac-thuc")
    html = page(client, "/dang-nhap/ma-xac-thuc")
    resp = client.post("/dang-nhap/ma-xac-thuc", data={"csrf_token": csrf_of(html),
                                                       "otp": code_after(gateway_url, person["phone"], before)})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client, person


def my_dossier_count(gateway_url, person) -> int:
    before = sms_count(gateway_url, person["phone"])
    tokens = call(f"{gateway_url}/api/v1/auth/login", "POST",
                  {"method": "password", "cccd": person["cccd"], "password": person["password"]})
    done = call(f"{gateway_url}/api/v1/auth/login/confirm", "POST",
                {"login_id": tokens["login_id"], "otp": code_after(gateway_url, person["phone"], before)})
    return call(f"{gateway_url}/api/v1/dossiers", token=done["access_token"])["total"]


def filing_form(client, files: dict | None = None, **fields) -> tuple[str, dict]:
    html = page(client, f"/thu-tuc/{PROCEDURE}/nop?co_quan={AGENCY}")
    data = {"csrf_token": csrf_of(html), "co_quan": AGENCY, "full_name": "Nguyễn Văn Thử", **fields}
    if files is None:
        files = {f"doc-tp{i}": (io.BytesIO(PDF), f"tp{i}.pdf") for i in (1, 2, 3)}
    data.update(files)
    return html, data


@pytest.fixture(scope="module")
def citizen(portal_app, gateway_url):
    return signed_in_client(portal_app, gateway_url)


def test_security_headers_and_cookie(portal_app):
    client = portal_app.test_client()
    resp = client.get("/dang-nhap")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    over_tls = client.get("/dang-nhap", base_url="https://portal.example")
    assert "Secure" in over_tls.headers["Set-Cookie"]


def test_post_without_or_with_forged_csrf_is_refused(portal_app):
    client = portal_app.test_client()
    page(client, "/dang-nhap")
    for data in ({"id_number": "001099000001", "password": "x"},
                 {"id_number": "001099000001", "password": "x", "csrf_token": "forged"}):
        resp = client.post("/dang-nhap", data=data)
        assert resp.status_code == 400
        assert "Biểu mẫu đã hết hạn" in resp.get_data(as_text=True)


def test_wrong_password_and_wrong_code_say_so_in_vietnamese(portal_app, gateway_url):
    person = register_citizen(gateway_url)
    client = portal_app.test_client()
    html = page(client, "/dang-nhap")
    resp = client.post("/dang-nhap", data={"csrf_token": csrf_of(html), "id_number": person["cccd"],
                                           "password": "not-the-password"})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "Số định danh hoặc mật khẩu không đúng" in text
    assert 'href="#f-id_number"' in text  # the error summary links to the field
    resp = client.post("/dang-nhap", data={"csrf_token": csrf_of(html), "id_number": person["cccd"],
                                           "password": person["password"]})
    assert resp.status_code == 302
    html = page(client, "/dang-nhap/ma-xac-thuc")
    resp = client.post("/dang-nhap/ma-xac-thuc", data={"csrf_token": csrf_of(html), "otp": "000000"})
    assert resp.status_code == 422
    assert "Mã xác thực không đúng hoặc đã hết hạn" in resp.get_data(as_text=True)
    assert client.get("/ho-so").status_code == 302  # still not signed in


def test_sign_in_next_cannot_leave_the_site(portal_app):
    client = portal_app.test_client()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        resp = client.get(f"/ngon-ngu/en?next={target}")
        assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_missing_field_oversized_and_mistyped_uploads_file_nothing(citizen, gateway_url):
    client, person = citizen
    _, data = filing_form(client, full_name="")
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'href="#f-full_name"' in text and "Nhập họ và tên" in text

    big = PDF + b"0" * (64 * 1024)
    _, data = filing_form(client, files={"doc-tp1": (io.BytesIO(big), "big.pdf"),
                                         "doc-tp2": (io.BytesIO(PDF), "b.pdf"), "doc-tp3": (io.BytesIO(PDF), "c.pdf")})
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422 and "Tệp lớn hơn" in resp.get_data(as_text=True)

    _, data = filing_form(client, files={"doc-tp1": (io.BytesIO(b"MZ\x90\x00 not a pdf"), "virus.pdf"),
                                         "doc-tp2": (io.BytesIO(PDF), "b.pdf"), "doc-tp3": (io.BytesIO(PDF), "c.pdf")})
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422 and "Chỉ chấp nhận tệp PDF, JPEG hoặc PNG" in resp.get_data(as_text=True)

    _, data = filing_form(client, files={"doc-tp1": (io.BytesIO(PDF), "a.pdf")})
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422 and "bắt buộc phải có giấy tờ này" in resp.get_data(as_text=True)
    assert my_dossier_count(gateway_url, person) == 0


def test_submit_twice_files_once_and_others_cannot_see_it(citizen, portal_app, gateway_url):
    client, person = citizen
    _, data = filing_form(client)
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    review = resp.headers["Location"]
    html = page(client, review)
    action = re.search(r'action="(/nop-ho-so/[^"]+/nop)"', html).group(1)
    first = client.post(action, data={"csrf_token": csrf_of(html)})
    second = client.post(action, data={"csrf_token": csrf_of(html)})  # a double click or a retry
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    receipt = page(client, first.headers["Location"])
    code = re.search(r'id="dossier-code"><strong>([^<]+)<', receipt).group(1)
    assert "<svg" in receipt and "Giấy tiếp nhận hồ sơ và hẹn trả kết quả" in receipt
    assert my_dossier_count(gateway_url, person) == 1

    other, _ = signed_in_client(portal_app, gateway_url)
    for path in (f"/ho-so/{code}", f"/ho-so/{code}/giay-tiep-nhan"):
        resp = other.get(path)
        assert resp.status_code == 404 and "Không tìm thấy" in resp.get_data(as_text=True)
    html = page(other, "/ho-so")
    resp = other.post(f"/ho-so/{code}/rut", data={"csrf_token": csrf_of(html), "reason": "x"})
    assert resp.status_code == 404
    assert call(f"{gateway_url}/api/v1/lookup/{code}")["status"] == "submitted"


def test_lookup_of_unknown_or_malformed_code(portal_app):
    client = portal_app.test_client()
    for code in ("W00004-UBND-000101-9999", "<script>", "../../etc"):
        resp = client.get("/tra-cuu", query_string={"ma": code})
        text = resp.get_data(as_text=True)
        assert resp.status_code == 404 and "Không có hồ sơ nào mang mã" in text
        assert "<script>" not in text


def test_health_ready_and_pages_without_sign_in(portal_app):
    client = portal_app.test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/ho-so").status_code == 302
    assert client.get("/mot-cua/").headers["Location"].endswith("/mot-cua/dang-nhap")
    assert "Đăng ký khai sinh" in page(client, "/thu-tuc?q=dang+ky+khai+sinh")
    assert client.get("/thu-tuc/khong-co-thu-tuc-nay").status_code == 404


def test_register_with_the_social_insurance_code(portal_app, gateway_url):
    person = random_person()
    bhxh = person["phone"][-10:]
    call(f"{gateway_url}/api/v1/dev/bhxh-records", "POST", {"bhxh_code": bhxh, "cccd": person["cccd"],
                                                            "full_name": person["full_name"],
                                                            "date_of_birth": person["date_of_birth"]})
    client = portal_app.test_client()
    html = page(client, "/dang-ky?cach=bhxh")
    assert 'id="f-bhxh_code"' in html
    form = {"csrf_token": csrf_of(html), "bhxh_code": bhxh, "password2": person["password"],
            **{k: person[k] for k in ("cccd", "full_name", "date_of_birth", "gender", "phone", "password")}}
    resp = client.post("/dang-ky?cach=bhxh", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    html = page(client, "/dang-ky/ma-xac-thuc")
    resp = client.post("/dang-ky/ma-xac-thuc", data={"csrf_token": csrf_of(html),
                                                     "otp": code_after(gateway_url, person["phone"], 0)})
    assert resp.status_code == 302 and "/dang-nhap" in resp.headers["Location"]
    tokens = sign_in(gateway_url, person["cccd"], person["password"], person["phone"])
    assert call(f"{gateway_url}/api/v1/me", token=tokens["access_token"])["bhxh_code"] == bhxh


def test_registration_refused_by_the_api_shows_its_fields(portal_app, gateway_url):
    person = random_person()  # not in the carrier's registry: the phone is not in this person's name
    client = portal_app.test_client()
    html = page(client, "/dang-ky")
    form = {"csrf_token": csrf_of(html), "password2": person["password"],
            **{k: person[k] for k in ("cccd", "full_name", "date_of_birth", "gender", "phone", "password")}}
    resp = client.post("/dang-ky", data=form)
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'class="error-summary"' in text
    assert client.get("/dang-ky/ma-xac-thuc").status_code == 302  # no registration is pending


def test_a_request_larger_than_the_limit_is_refused_whole(citizen, portal_app):
    client, _ = citizen
    _, data = filing_form(client)
    limit = portal_app.config["MAX_CONTENT_LENGTH"]
    data["doc-tp1"] = (io.BytesIO(PDF + b"0" * limit), "huge.pdf")
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 413 and "quá lớn" in resp.get_data(as_text=True)


def test_withdraw_my_dossier(portal_app, gateway_url):
    client, _ = signed_in_client(portal_app, gateway_url)
    _, data = filing_form(client)
    review = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    html = page(client, review.headers["Location"])
    receipt = client.post(re.search(r'action="(/nop-ho-so/[^"]+/nop)"', html).group(1),
                          data={"csrf_token": csrf_of(html)})
    code = receipt.headers["Location"].split("/")[2]
    html = page(client, f"/ho-so/{code}")
    assert "Rút hồ sơ" in html
    resp = client.post(f"/ho-so/{code}/rut", data={"csrf_token": csrf_of(html), "reason": "Nộp nhầm thủ tục"})
    assert resp.status_code == 303
    html = page(client, f"/ho-so/{code}")
    assert "Hồ sơ đã được rút" in html and "Đã rút" in html and "Nộp nhầm thủ tục" in html
    assert call(f"{gateway_url}/api/v1/lookup/{code}")["status"] == "withdrawn"
    again = client.post(f"/ho-so/{code}/rut", data={"csrf_token": csrf_of(html)})
    assert again.status_code in (303, 409)  # nothing more to withdraw; no error page of the system


def test_hostile_query_strings_are_escaped_or_refused(portal_app):
    client = portal_app.test_client()
    resp = client.get("/thu-tuc", query_string={"q": '"><script>alert(1)</script>', "page": "-3", "level": "<b>"})
    text = resp.get_data(as_text=True)
    assert resp.status_code in (200, 422) and "<script>alert(1)" not in text and "<b>" not in text
    assert "&lt;script&gt;" in text or "&#34;&gt;&lt;script&gt;" in text
    assert client.get("/thu-tuc", query_string={"page": "x" * 5000}).status_code in (200, 400, 414)
    for path in ("/thu-tuc/..%2F..%2Fapi%2Fv1%2Fdev%2Ftokens", "/co-quan/a%20b", "/su-kien/<x>"):
        assert client.get(path).status_code == 404


def test_files_that_passed_are_kept_when_the_form_comes_back(citizen):
    client, _ = citizen
    _, data = filing_form(client, files={"doc-tp1": (io.BytesIO(PDF), "to-khai.pdf"),
                                         "doc-tp2": (io.BytesIO(b"GIF89a"), "anh.pdf")})
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "Đã giữ lại: to-khai.pdf" in text and "Đã giữ lại: anh.pdf" not in text
    again = {"csrf_token": csrf_of(text), "co_quan": AGENCY, "full_name": "Nguyễn Văn Thử",
             "doc-tp2": (io.BytesIO(PDF), "chung-sinh.pdf"), "doc-tp3": (io.BytesIO(PDF), "cccd.pdf")}
    resp = client.post(f"/thu-tuc/{PROCEDURE}/nop", data=again, content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    review = page(client, resp.headers["Location"])
    assert all(name in review for name in ("to-khai.pdf", "chung-sinh.pdf", "cccd.pdf"))
    fresh = page(client, f"/thu-tuc/{PROCEDURE}/nop?co_quan={AGENCY}")
    assert "Đã giữ lại" not in fresh  # a new form starts empty


EXEMPT_PROCEDURE = "2.000488"  # Phiếu lý lịch tư pháp: 200.000 đồng unless the applicant is exempt


def _exempt_filing(client, gateway_url, choice: str) -> tuple[str, dict]:
    proc = call(f"{gateway_url}/api/v1/procedures/{EXEMPT_PROCEDURE}")
    agencies = call(f"{gateway_url}/api/v1/procedures/{EXEMPT_PROCEDURE}/agencies?province=1")
    agency = (agencies.get("items", agencies) if isinstance(agencies, dict) else agencies)[0]["code"]
    html = page(client, f"/thu-tuc/{EXEMPT_PROCEDURE}/nop?co_quan={agency}")
    data = {"csrf_token": csrf_of(html), "co_quan": agency, "full_name": "Nguyễn Bé Con", "exempt-le-phi": choice}
    data.update({f"doc-{d['id']}": (io.BytesIO(PDF), f"{d['id']}.pdf")
                 for d in proc["required_documents"] if d["mandatory"]})
    return html, data


def _desk_client(portal_app, gateway_url, agency: str):
    officer = new_officer(gateway_url, agency)
    desk = portal_app.test_client()
    html = page(desk, "/mot-cua/dang-nhap")
    before = sms_count(gateway_url, officer["phone"])
    resp = desk.post("/mot-cua/dang-nhap", data={"csrf_token": csrf_of(html), "username": officer["username"],
                                                 "password": officer["password"]})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    html = page(desk, "/mot-cua/dang-nhap/ma-xac-thuc")
    resp = desk.post("/mot-cua/dang-nhap/ma-xac-thuc", data={
        "csrf_token": csrf_of(html), "otp": code_after(gateway_url, officer["phone"], before)})
    assert resp.status_code == 302 and resp.headers["Location"] == "/mot-cua/", resp.get_data(as_text=True)
    return desk


def test_declare_a_fee_exemption_and_the_desk_disputes_it(portal_app, gateway_url):
    client, person = signed_in_client(portal_app, gateway_url)
    html, data = _exempt_filing(client, gateway_url, "Sinh viên")  # not an exemption the fee lists
    assert "Tôi thuộc diện miễn:" in html and 'name="exempt-le-phi"' in html
    assert "Không thuộc diện miễn" in html and ">Trẻ em</option>" in html and " selected" not in html
    resp = client.post(f"/thu-tuc/{EXEMPT_PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422 and "Chọn một trong các diện miễn" in resp.get_data(as_text=True)
    assert my_dossier_count(gateway_url, person) == 0

    _, data = _exempt_filing(client, gateway_url, "Trẻ em")
    resp = client.post(f"/thu-tuc/{EXEMPT_PROCEDURE}/nop", data=data, content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    html = page(client, resp.headers["Location"])
    assert "được miễn (thuộc diện Trẻ em)" in html
    filed = client.post(re.search(r'action="(/nop-ho-so/[^"]+/nop)"', html).group(1),
                        data={"csrf_token": csrf_of(html)})
    assert filed.status_code == 303
    code = filed.headers["Location"].split("/")[2]
    html = page(client, f"/ho-so/{code}")
    assert "được miễn (thuộc diện Trẻ em)" in html and "Không phải nộp khoản này." in html
    assert call(f"{gateway_url}/api/v1/lookup/{code}")["status"] == "submitted"

    desk = _desk_client(portal_app, gateway_url, code.rsplit("-", 2)[0])
    html = page(desk, f"/mot-cua/ho-so/{code}")
    action = f"/mot-cua/ho-so/{code}/dispute-exemption"
    assert f'action="{action}"' in html and "được miễn (thuộc diện Trẻ em)" in html
    assert desk.post(action, data={"fee_id": "le-phi", "reason": "x"}).status_code == 400  # no CSRF token
    resp = desk.post(action, data={"csrf_token": csrf_of(html), "fee_id": "le-phi", "reason": ""})
    assert resp.status_code == 422
    resp = desk.post(action, data={"csrf_token": csrf_of(html), "fee_id": "khong-co", "reason": "x"})
    assert resp.status_code == 422  # the API's 409, shown on the page
    assert call(f"{gateway_url}/api/v1/lookup/{code}")["status"] == "submitted"
    resp = desk.post(action, data={"csrf_token": csrf_of(html), "fee_id": "le-phi", "reason": "Người nộp đã 30 tuổi"})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    html = page(desk, f"/mot-cua/ho-so/{code}")
    assert "Không được chấp nhận" in html and f'action="{action}"' not in html
    html = page(client, f"/ho-so/{code}")
    assert "Cơ quan không chấp nhận diện miễn này" in html and "Người nộp đã 30 tuổi" in html
    assert call(f"{gateway_url}/api/v1/lookup/{code}")["status"] == "awaiting_payment"


def test_the_desk_requests_a_payment_and_an_invalid_amount_writes_nothing(portal_app, gateway_url):
    from tests.payment.conftest import FREE_PROCEDURE, Citizen

    code = Citizen(gateway_url).file(FREE_PROCEDURE)["code"]
    agency = code.rsplit("-", 2)[0]
    token = staff_token(gateway_url, "officer", agency)
    call(f"{gateway_url}/api/v1/agency/dossiers/{code}/receive", "POST", {}, token=token)

    def seen() -> tuple[str, int]:
        view = call(f"{gateway_url}/api/v1/agency/dossiers/{code}", token=token)
        return view["status"], len(view["timeline"])

    before = seen()
    assert before[0] == "received"
    desk = _desk_client(portal_app, gateway_url, agency)
    html = page(desk, f"/mot-cua/ho-so/{code}")
    action = f"/mot-cua/ho-so/{code}/request-payment"
    assert f'action="{action}"' in html and "Yêu cầu thanh toán" in html and 'for="request-payment-amount"' in html
    assert desk.post(action, data={"amount": "150000", "reason": "x"}).status_code == 400  # no CSRF token

    for amount in ("0", "-5", "1,5", "mười nghìn", "9" * 14):
        resp = desk.post(action, data={"csrf_token": csrf_of(html), "amount": amount, "reason": "Phí thẩm định"})
        shown = resp.get_data(as_text=True)
        assert resp.status_code == 422, amount
        assert 'href="#request-payment-amount"' in shown and 'id="request-payment-amount-error"' in shown
        assert "Nhập số tiền là số nguyên đồng, từ 1 đến 1.000.000.000.000, ví dụ 200.000." in shown
        assert 'aria-invalid="true"' in shown and "Phí thẩm định" in shown  # what was typed is kept
    resp = desk.post(action, data={"csrf_token": csrf_of(html), "amount": "", "reason": "", "due_date": "31/12/2026"})
    shown = resp.get_data(as_text=True)
    assert resp.status_code == 422
    for field in ("request-payment-amount", "request-payment-reason", "request-payment-due"):
        assert f'href="#{field}"' in shown and f'id="{field}"' in shown
    assert "Nhập số tiền phải nộp, tính bằng đồng." in shown and "Nêu lý do." in shown
    assert "NNNN-TT-NN" in shown
    assert seen() == before  # nothing written

    resp = desk.post(action, data={"csrf_token": csrf_of(html), "amount": "150.000",
                                   "reason": "Phí thẩm định bổ sung", "due_date": "2099-12-31"})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    html = page(desk, resp.headers["Location"])
    assert "Đã yêu cầu người nộp thanh toán." in html and "Chờ thanh toán" in html
    assert f'action="{action}"' not in html  # nothing more to ask while it waits
    assert seen()[0] == "awaiting_payment"
    timeline = call(f"{gateway_url}/api/v1/agency/dossiers/{code}", token=token)["timeline"]
    assert timeline[-1]["event"] == "DossierPaymentRequested" and "Yêu cầu thanh toán" in html
