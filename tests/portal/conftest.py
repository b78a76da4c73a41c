"""The portal under test: the real system (session fixture ``system``) with the portal in
front of it, as a subprocess on a free port for the browser and in-process (Flask's test
client) for hostile input. One browser for the whole run."""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.launcher import start_portal, stop_process, wait_http
from tests.support.accounts import call, latest_code, random_person, staff_token

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".run" / "browser"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def portal_url(system, gateway_url, tmp_path_factory) -> Iterator[str]:
    # the port the system registered as the portal's (its VNeID redirect_uri), else any free one
    port = int(system.extra_env.get("PORTAL_PORT") or _free_port())
    proc = start_portal(gateway_url, port, log_dir=tmp_path_factory.mktemp("portal-logs"),
                        extra_env={"PORTAL_MAX_UPLOAD_BYTES": str(256 * 1024)})
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def portal_app(gateway_url):
    """The same application in-process, for the test client (uploads capped at 64 KiB)."""
    from portal.app import create_app
    from portal.config import Settings

    return create_app(Settings(gateway_url=gateway_url, max_upload_bytes=64 * 1024))


@pytest.fixture(scope="session")
def driver() -> Iterator:
    from tests.support.browser import MISSING, browser_available, new_driver

    if not browser_available():
        pytest.fail(MISSING)
    drv = new_driver()
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this run's steps only
        old.unlink()
    return SHOTS


def axe_violations(driver) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on the current page."""
    from selenium_axe_python import Axe

    axe = Axe(driver)
    axe.inject()
    result = axe.run(options={"runOnly": {"type": "tag", "values": WCAG}})
    return result["violations"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def new_citizen(gateway_url: str) -> dict:
    """A person the carrier knows (registration is done by the test, through the portal)."""
    person = random_person()
    call(f"{gateway_url}/api/v1/dev/carrier-records", "POST", {"phone": person["phone"], "cccd": person["cccd"]})
    return person


def new_officer(gateway_url: str, agency_code: str) -> dict:
    """An activated officer account of ``agency_code`` (created by an operator, activated by SMS)."""
    operator = staff_token(gateway_url, "operator")
    username = f"cb{secrets.token_hex(4)}"
    phone = f"09{secrets.randbelow(10**8):08d}"
    call(f"{gateway_url}/api/v1/staff", "POST", {"username": username, "role": "officer", "agency_code": agency_code,
                                                 "full_name": "Trần Thị Cán Bộ", "phone": phone}, token=operator)
    password = f"Can-bo-{secrets.token_hex(4)}A1"
    call(f"{gateway_url}/api/v1/auth/staff/activate", "POST",
         {"username": username, "otp": code_after(gateway_url, phone, 0), "password": password})
    return {"username": username, "password": password, "phone": phone}


def sms_count(gateway_url: str, phone: str) -> int:
    return len(call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={phone}")["items"])


def code_after(gateway_url: str, phone: str, before: int, timeout: float = 15.0) -> str:
    """The one-time code of the first SMS to ``phone`` after the ``before`` it already had
    (sending can be asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sms_count(gateway_url, phone) > before:
            return latest_code(gateway_url, phone)
        time.sleep(0.1)
    raise AssertionError(f"no new code was sent to {phone}")
