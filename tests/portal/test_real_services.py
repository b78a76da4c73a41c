"""The portal's VNeID sign-in and fee payment end to end in a real browser, through the real
gateway, the local VNeID stand-in (deploy/vneid) and the local payment platform: no stand-in
of the API contract. axe runs on the portal's own pages (not on the stand-ins')."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.payment.conftest import FEE, FEE_PROCEDURE, PROVINCE
from tests.portal.test_journey import Journey, _sign_in
from tests.support.accounts import register_citizen
from tests.support.filings import complete_filing
from tests.vneid.support import new_identity

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _wait(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_sign_in_with_vneid_through_the_stand_in(driver, portal_url, gateway_url, shots):
    identity = new_identity(gateway_url, level=2)
    j = Journey(driver, portal_url, gateway_url, shots)
    driver.delete_all_cookies()
    j.open("/dang-nhap", "vneid-sign-in")
    j.click(element=j.link("Đăng nhập bằng VNeID"))
    assert "/authorize" in driver.current_url, driver.current_url
    j.fill("#cccd", identity["cccd"])
    j.click("button[type=submit]")  # the stand-in sends the browser back to /dang-nhap/vneid
    assert driver.current_url.startswith(portal_url), driver.current_url
    assert "/dang-nhap" not in driver.current_url, j.by("main").text
    j.check("vneid-signed-in")
    j.open("/tai-khoan", "vneid-account")
    main = j.by("main").text
    assert identity["full_name"] in main and identity["cccd"] in main


def test_unknown_identity_at_the_stand_in_is_refused(driver, portal_url, gateway_url, shots):
    j = Journey(driver, portal_url, gateway_url, shots)
    driver.delete_all_cookies()
    j.open("/dang-nhap", "vneid-sign-in-again")
    j.click(element=j.link("Đăng nhập bằng VNeID"))
    j.fill("#cccd", "000000000000")  # no such identity: the stand-in answers access_denied
    j.click("button[type=submit]")
    assert driver.current_url.startswith(f"{portal_url}/dang-nhap/vneid")
    assert "VNeID" in j.by("main").text
    j.check("vneid-refused")
    driver.get(f"{portal_url}/tai-khoan")
    assert "/dang-nhap" in driver.current_url  # not signed in
def _file_fee_dossier(gateway_url: str, account: dict) -> str:
    auth = {"Authorization": f"Bearer {account['access_token']}"}
    procedure = requests.get(f"{gateway_url}/api/v1/procedures/{FEE_PROCEDURE}", timeout=30).json()
    agencies = requests.get(f"{gateway_url}/api/v1/procedures/{FEE_PROCEDURE}/agencies?province={PROVINCE}",
                            timeout=30).json()
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    resp = requests.post(f"{gateway_url}/api/v1/dossiers", json=complete_filing(procedure, agencies[0], "Trần Thị Nộp"),
                         headers={**auth, "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()["code"]


def test_pay_a_fee_and_download_the_receipt(driver, portal_url, gateway_url, shots):
    account = register_citizen(gateway_url)
    code = _file_fee_dossier(gateway_url, account)
    j = Journey(driver, portal_url, gateway_url, shots)
    driver.delete_all_cookies()
    j.open(f"/dang-nhap?next=/ho-so/{code}", "pay-sign-in")
    _sign_in(j, account)
    page = f"/ho-so/{code}"

    def due_shown():
        driver.get(portal_url + page)
        return j.all("form[action$='/thanh-toan'] button[type=submit]")

    _wait(due_shown, "the fee to be shown as due")
    j.check("dossier-fee-due")
    section = j.by("#payments-title").find_element("xpath", "..").text
    assert f"{FEE:,}".replace(",", ".") in section, section
    j.click("form[action$='/thanh-toan'] button[type=submit]")
    assert "/api/v1/dev/payment-platform/pay" in driver.current_url, driver.current_url
    assert f"{FEE:,}".replace(",", ".") in j.by("h1").text
    j.by("#ok").click()  # "Thanh toán" on the platform's page
    _wait(lambda: j.by("#s").text == "success", "the platform to settle the payment")

    def receipt_link():
        driver.get(portal_url + page)
        return [a for a in j.all("section[aria-labelledby=payments-title] a")
                if "/tai-lieu/" in (a.get_attribute("href") or "")]

    links = _wait(receipt_link, "the receipt link on the dossier page", timeout=90)
    j.check("dossier-paid")
    assert "Đã thanh toán" in j.by("section[aria-labelledby=payments-title]").text
    assert not j.all("form[action$='/thanh-toan']")  # nothing left to pay
    session = requests.Session()
    for c in driver.get_cookies():
        session.cookies.set(c["name"], c["value"])
    resp = session.get(links[0].get_attribute("href"), timeout=30)
    assert resp.status_code == 200 and resp.content.startswith(b"%PDF"), (resp.status_code, resp.content[:80])
    assert requests.get(links[0].get_attribute("href"), timeout=30, allow_redirects=False).status_code in (302, 303,
                                                                                                         401, 404)
