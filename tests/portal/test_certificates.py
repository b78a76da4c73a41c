"""Registering and signing in with a digital-signature certificate (SIM / USB token) through
the portal's pages: Flask's test client in front of the real gateway and identity service,
with a test PKI of this module's own whose root the running identity trusts. Certificates
and signatures are made as a token would (tests/identity/pki.py). Every refusal is a 422
page whose error summary links to the field, and signs nobody in."""

from __future__ import annotations

import base64
import html as htmllib
import io
import re
import secrets
import uuid

import pytest
from cryptography.hazmat.primitives import serialization

from tests.identity.pki import Issued, Pki, crl_pem, make_ca, make_leaf
from tests.portal.conftest import csrf_of
from tests.portal.test_journey import Journey
from tests.portal.test_pages import page
from tests.support.accounts import call, random_person, staff_token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REGISTER, SIGN_IN = "/dang-ky?cach=chung-thu-so", "/dang-nhap?cach=chung-thu-so"


@pytest.fixture(scope="module")
def pki(gateway_url) -> Pki:
    """Root → intermediate → leaves; the root is trusted by the running identity."""
    made = Pki(f"portal {uuid.uuid4().hex[:8]}")
    call(f"{gateway_url}/api/v1/dev/trusted-cas", "POST", {"certificate_pem": made.root_pem})
    return made


@pytest.fixture(scope="module")
def direct_ca(gateway_url) -> Issued:
    """A trusted CA that issues leaves itself: one certificate is the whole proof (a DER file)."""
    ca = make_ca(f"Portal Direct CA {uuid.uuid4().hex[:8]}")
    call(f"{gateway_url}/api/v1/dev/trusted-cas", "POST", {"certificate_pem": ca.pem})
    return ca


def client_of(portal_app):
    """A test client with an address of its own: failed sign-ins count against nobody else's."""
    client = portal_app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10." + ".".join(str(secrets.randbelow(250)) for _ in range(3))
    return client


def challenge_of(html: str) -> tuple[str, str]:
    """The reference to its challenge the form carries and the text it shows to sign."""
    found = re.search(r'name="challenge_ref" value="([^"]+)"', html)
    text = re.search(r'<textarea id="f-challenge"[^>]*>([^<]*)</textarea>', html)
    assert found and text, "the page shows no challenge"
    return found.group(1), htmllib.unescape(text.group(1))


def proof(html: str, leaf: Issued, chain: list[str] = (), sign: str | None = None, **fields) -> dict:
    """The form's fields for ``leaf`` (pasted with ``chain``) and its signature over the page's challenge."""
    ref, text = challenge_of(html)
    return {"csrf_token": csrf_of(html), "challenge_ref": ref,
            "certificate_pem": leaf.pem + "".join(chain), "signature": leaf.sign(sign or text), **fields}


def signed_in(client) -> bool:
    return client.get("/tai-khoan").status_code == 200


def register(client, leaf: Issued, chain: list[str] = (), **fields):
    html = page(client, REGISTER)
    return client.post(REGISTER, data=proof(html, leaf, chain, **fields), content_type="multipart/form-data")


def registered_holder(portal_app, pki: Pki) -> Issued:
    """A citizen registered with a certificate (through the portal), signed out again."""
    leaf = pki.citizen(random_person()["cccd"])
    assert register(client_of(portal_app), leaf, pki.chain).status_code == 302
    return leaf


def assert_refused(resp, field: str, message: str | None = None) -> str:
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422, (resp.status_code, text[:2000])
    assert 'class="error-summary"' in text and f'href="#{field}"' in text, text[:4000]
    if message:
        assert message in text, text[:4000]
    return text


def test_register_then_sign_in_with_a_certificate(portal_app, pki):
    cccd = random_person()["cccd"]
    leaf = pki.citizen(cccd, cn="TRAN THI BINH")
    client = client_of(portal_app)
    html = page(client, REGISTER)
    assert 'aria-current="page">Bằng chứng thư số' in html and "Đoạn văn bản cần ký" in html
    ref, text = challenge_of(html)
    assert text.startswith("portal-identity:register:")
    assert challenge_of(page(client, REGISTER))[0] == ref  # a reload keeps what may have been signed
    assert _session(client)["cert_challenge_register"]["id"] not in html  # the id stays on the server
    resp = client.post(REGISTER, data=proof(html, leaf, pki.chain, full_name="Trần Thị Bình",
                                            certificate_kind="sim", phone=""))
    assert resp.status_code == 302 and resp.headers["Location"] == "/ho-so", resp.get_data(as_text=True)
    assert "Tài khoản của bạn đã sẵn sàng" in page(client, "/ho-so")
    account = page(client, "/tai-khoan")
    assert "Trần Thị Bình" in account and cccd in account

    html = page(client, "/tai-khoan")
    assert client.post("/dang-xuat", data={"csrf_token": csrf_of(html)}).status_code == 302
    assert not signed_in(client)

    html = page(client, f"{SIGN_IN}&next=/tai-khoan")
    assert challenge_of(html)[1].startswith("portal-identity:login:")
    form = proof(html, leaf)
    bundle = (leaf.pem + pki.intermediate.pem).encode()
    assert 'name="next" value="/tai-khoan"' in html
    form.update(certificate_pem="", certificate_file=(io.BytesIO(bundle), "chung-thu.pem"), next="/tai-khoan")
    resp = client.post(SIGN_IN, data=form, content_type="multipart/form-data")
    assert resp.status_code == 302 and resp.headers["Location"] == "/tai-khoan", resp.get_data(as_text=True)
    assert "Trần Thị Bình" in page(client, "/tai-khoan")
    assert 'name="challenge_ref"' not in page(client, "/ho-so")  # nothing of the proof lingers in pages


def test_a_der_certificate_file_registers_and_signs_in(portal_app, direct_ca):
    leaf = make_leaf(direct_ca, f"CCCD:{random_person()['cccd']}", key_kind="rsa")
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    client = client_of(portal_app)
    for path in (REGISTER, SIGN_IN):
        html = page(client, path)
        form = {**proof(html, leaf), "certificate_pem": "", "certificate_file": (io.BytesIO(der), "token.cer")}
        resp = client.post(path, data=form, content_type="multipart/form-data")
        assert resp.status_code == 302, resp.get_data(as_text=True)
        assert signed_in(client)
        client.post("/dang-xuat", data={"csrf_token": csrf_of(page(client, "/tai-khoan"))})


def test_a_wrong_signature_is_refused_and_signs_nobody_in(portal_app, pki):
    leaf = registered_holder(portal_app, pki)
    client = client_of(portal_app)
    html = page(client, SIGN_IN)
    first_id, _ = challenge_of(html)
    resp = client.post(SIGN_IN, data=proof(html, leaf, pki.chain, sign="another text"))
    text = assert_refused(resp, "f-signature", "Chữ ký không khớp với đoạn văn bản cần ký")
    assert challenge_of(text)[0] != first_id  # the spent challenge is replaced
    stranger = pki.citizen(random_person()["cccd"])  # the right text, another key
    resp = client.post(SIGN_IN, data={**proof(text, stranger, pki.chain), "certificate_pem": leaf.pem + pki.chain[0]})
    assert_refused(resp, "f-signature")
    assert not signed_in(client) and "tokens" not in _session(client)


def test_a_spent_swapped_or_unknown_challenge_is_refused(portal_app, pki):
    leaf = registered_holder(portal_app, pki)
    client = client_of(portal_app)
    html = page(client, SIGN_IN)
    spent = proof(html, leaf, pki.chain)
    assert_refused(client.post(SIGN_IN, data={**spent, "signature": leaf.sign("wrong")}), "f-signature")
    # the same challenge again, now rightly signed: spent, refused before it reaches the gateway
    assert_refused(client.post(SIGN_IN, data=spent), "f-challenge", "Đoạn văn bản cần ký đã hết hạn hoặc đã được dùng")
    # another session's challenge, a reference nobody issued, and the API's own id instead of one
    other = client_of(portal_app)
    foreign = proof(page(other, SIGN_IN), leaf, pki.chain)
    assert_refused(client.post(SIGN_IN, data={**foreign, "csrf_token": spent["csrf_token"]}), "f-challenge")
    held = _session(client)["cert_challenge_login"]
    for ref in (secrets.token_urlsafe(16), held["id"]):
        assert_refused(client.post(SIGN_IN, data={**proof(html, leaf, pki.chain), "challenge_ref": ref}), "f-challenge")
    assert not signed_in(client)
    # none of those spent the session's own challenge: signed now, it signs in
    fresh = page(client, SIGN_IN)
    assert challenge_of(fresh)[0] == held["ref"] and held["id"] not in fresh
    assert client.post(SIGN_IN, data=proof(fresh, leaf, pki.chain)).status_code == 302
    assert signed_in(client)
    # and a session that never asked for one holds none
    blank = client_of(portal_app)
    html = page(blank, "/dang-nhap")
    resp = blank.post(SIGN_IN, data={**spent, "csrf_token": csrf_of(html)})
    assert_refused(resp, "f-challenge")


def test_a_missing_field_keeps_the_challenge(portal_app, pki):
    leaf = pki.citizen(random_person()["cccd"])
    client = client_of(portal_app)
    html = page(client, REGISTER)
    form = proof(html, leaf, pki.chain)
    text = assert_refused(client.post(REGISTER, data={**form, "signature": ""}), "f-signature",
                          "Dán chữ ký của đoạn văn bản cần ký")
    assert "-----BEGIN CERTIFICATE-----" in text  # what was pasted stays
    assert_refused(client.post(REGISTER, data={**form, "certificate_pem": ""}), "f-certificate",
                   "Dán chứng thư số hoặc chọn tệp chứng thư số")
    assert_refused(client.post(REGISTER, data={**form, "signature": "not base64!"}), "f-signature")
    assert_refused(client.post(REGISTER, data={**form, "account_type": "business"}), "f-representative_cccd")
    assert challenge_of(text)[0] == form["challenge_ref"]  # no attempt was made: the same text stays to sign
    assert not signed_in(client)
    assert client.post(REGISTER, data=form).status_code == 302  # the signature made at first still counts


def test_garbage_instead_of_a_certificate_is_refused(portal_app, pki):
    leaf = pki.citizen(random_person()["cccd"])
    client = client_of(portal_app)
    html = page(client, REGISTER)
    form = proof(html, leaf, pki.chain)
    for name, content in (("chung-thu.pem", b"hello, this is no certificate"),
                          ("chung-thu.crt", b"\x30\x82\xff\xff\x00garbage"),
                          ("chung-thu.cer", b"")):
        resp = client.post(REGISTER, data={**form, "certificate_file": (io.BytesIO(content), name)},
                           content_type="multipart/form-data")
        assert_refused(resp, "f-certificate_file")
    key = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    assert_refused(client.post(REGISTER, data={**form, "certificate_pem": key}), "f-certificate",
                   "Đây là khóa bí mật")
    broken = "-----BEGIN CERTIFICATE-----\nAAAA!!\n-----END CERTIFICATE-----\n"
    assert_refused(client.post(REGISTER, data={**form, "certificate_pem": broken}), "f-certificate",
                   "Đây không phải chứng thư số")
    assert challenge_of(page(client, REGISTER))[0] == form["challenge_ref"]  # none of it reached the gateway
    # shaped like a certificate, yet not one: the identity service says so
    fake = "-----BEGIN CERTIFICATE-----\n" + base64.b64encode(b"\x30\x03\x02\x01\x01").decode() + \
        "\n-----END CERTIFICATE-----\n"
    assert_refused(client.post(REGISTER, data={**form, "certificate_pem": fake}), "f-certificate",
                   "Không đọc được chứng thư số")
    assert not signed_in(client)


def test_revoked_untrusted_or_unregistered_certificates_are_refused(portal_app, pki, gateway_url):
    client = client_of(portal_app)
    nobody = pki.citizen(random_person()["cccd"])
    assert_refused(client.post(SIGN_IN, data=proof(page(client, SIGN_IN), nobody, pki.chain)), "f-certificate",
                   "Không có tài khoản nào đăng nhập được bằng chứng thư số này")
    stranger = make_leaf(pki.stranger, f"CCCD:{random_person()['cccd']}")
    assert_refused(client.post(REGISTER, data=proof(page(client, REGISTER), stranger)), "f-certificate",
                   "không do tổ chức cung cấp dịch vụ chứng thực mà Cổng tin cậy cấp")
    own = Pki(f"revoking {uuid.uuid4().hex[:8]}")  # a PKI of its own: its CRL touches no other test
    call(f"{gateway_url}/api/v1/dev/trusted-cas", "POST", {"certificate_pem": own.root_pem})
    leaf = registered_holder(portal_app, own)
    call(f"{gateway_url}/api/v1/pki/crls", "POST", {"crl": crl_pem(own.crl([leaf])), "issuer_pem": own.chain[0]},
         token=staff_token(gateway_url, "operator"))
    assert_refused(client.post(SIGN_IN, data=proof(page(client, SIGN_IN), leaf, own.chain)), "f-certificate",
                   "Chứng thư số đã bị tổ chức cung cấp dịch vụ chứng thực thu hồi")
    assert_refused(client.post(REGISTER, data=proof(page(client, REGISTER), leaf, pki.chain)), "f-certificate")
    assert not signed_in(client)


def test_already_registered_holder_is_told_to_sign_in(portal_app, pki):
    leaf = registered_holder(portal_app, pki)
    client = client_of(portal_app)
    assert_refused(register(client, leaf, pki.chain), "f-certificate", "đã có tài khoản")
    assert not signed_in(client)


def test_certificate_forms_need_the_csrf_token(portal_app, pki):
    leaf = pki.citizen(random_person()["cccd"])
    client = client_of(portal_app)
    form = proof(page(client, REGISTER), leaf, pki.chain)
    assert client.post(REGISTER, data={**form, "csrf_token": "forged"}).status_code == 400
    assert client.post(REGISTER, data=form).status_code == 302  # nothing was spent by the forged post


def test_the_certificate_pages_in_english(portal_app):
    client = client_of(portal_app)
    client.get("/ngon-ngu/en")
    html = page(client, SIGN_IN)
    assert "Text to sign" in html and "With a digital certificate (SIM or USB token)" in html
    assert 'href="/dang-nhap?cach=chung-thu-so' in page(client, "/dang-nhap")
    assert 'href="/dang-ky?cach=chung-thu-so"' in page(client, "/dang-ky")


def test_certificate_registration_and_sign_in_in_a_browser(driver, portal_url, gateway_url, pki, shots, tmp_path):
    cccd = random_person()["cccd"]
    leaf = pki.citizen(cccd, cn="LE VAN CUONG")
    j = Journey(driver, portal_url, gateway_url, shots)
    driver.delete_all_cookies()
    j.open("/dang-ky", "register")
    j.click(element=j.link("Bằng chứng thư số"))
    j.check("certificate-register")
    j.submit("main form button[type=submit]", "certificate-register-errors")
    assert j.by(".error-summary a[href='#f-certificate']").text == "Dán chứng thư số hoặc chọn tệp chứng thư số."
    j.fill("#f-certificate", leaf.pem + pki.chain[0])
    j.fill("#f-signature", leaf.sign(j.by("#f-challenge").get_attribute("value")))
    j.fill("#f-full_name", "Lê Văn Cường")
    j.submit("main form button[type=submit]", "certificate-registered")
    assert "Tài khoản của bạn đã sẵn sàng" in j.by("main").text
    j.click("form[action='/dang-xuat'] button")
    j.open("/dang-nhap", "sign-in")
    j.click(element=j.link("Bằng chứng thư số"))
    j.check("certificate-sign-in")
    bundle = tmp_path / "chung-thu.pem"
    bundle.write_text(leaf.pem + pki.chain[0])
    j.by("#f-certificate_file").send_keys(str(bundle))
    j.fill("#f-signature", leaf.sign("not the text"))
    j.submit("main form button[type=submit]", "certificate-sign-in-refused")
    assert j.by(".error-summary a[href='#f-signature']")
    j.by("#f-certificate_file").send_keys(str(bundle))
    j.fill("#f-signature", leaf.sign(j.by("#f-challenge").get_attribute("value")))
    j.click("main form button[type=submit]")
    assert "/dang-nhap" not in driver.current_url, j.by("main").text
    j.open("/tai-khoan", "certificate-account")
    assert "Lê Văn Cường" in j.by("main").text and cccd in j.by("main").text
    driver.delete_all_cookies()  # the run's one browser goes on to other tests signed out


def _session(client) -> dict:
    """What the portal keeps server-side for this client (the in-process store)."""
    with client.session_transaction() as sess:
        return dict(sess)
