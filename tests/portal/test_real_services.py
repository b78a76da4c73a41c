"""The portal's VNeID sign-in and fee payment end to end in a real browser, through the real
gateway, the local VNeID stand-in (deploy/vneid) and the local payment platform: no stand-in
of the API contract. axe runs on the portal's own pages (not on the stand-ins')."""

from __future__ import annotations

import time

import pytest

from tests.portal.test_journey import Journey
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
    driver.get(f"{portal_url}/tai-khoan")
    assert "/dang-nhap" in driver.current_url  # not signed in
