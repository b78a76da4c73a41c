"""Helpers of the end-to-end tests: JSON over HTTP to the running system's gateway, the
reference back office as its own process (``python -m deploy.backoffice``), and a filing
built from what the public catalog says."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support import accounts as account_helpers
from tests.support.filings import complete_filing
from tests.support.http import http
from tests.support.processes import stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROCEDURE = "1.001193"  # Đăng ký khai sinh, commune level
PROVINCE = "1"  # Thành phố Hà Nội (seeded)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.3, what: str = "condition"):
    """``wait_for`` with the end-to-end tests' patience."""
    return wait_for(predicate, timeout, interval, what)


def pdf(text: str) -> str:
    return base64.b64encode(b"%PDF-1.4\n% " + text.encode() + b"\n%%EOF\n").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commune_agencies(gateway_url: str, count: int) -> list[dict]:
    """``count`` commune offices implementing the procedure, in different wards."""
    status, body, _ = http(f"{gateway_url}/api/v1/procedures/{PROCEDURE}/agencies?province={PROVINCE}")
    assert status == 200, body
    items = body.get("items", body) if isinstance(body, dict) else body
    chosen: list[dict] = []
    for agency in items:
        if agency.get("ward_code") and agency["ward_code"] not in {a["ward_code"] for a in chosen}:
            chosen.append(agency)
        if len(chosen) == count:
            return chosen
    raise AssertionError(f"fewer than {count} commune offices implement {PROCEDURE} in province {PROVINCE}")


def filing(procedure: dict, agency: dict, full_name: str = "Nguyễn Thị Thử") -> dict:
    """A complete filing: every mandatory document, the applicant's place = the office's ward."""
    return complete_filing(procedure, agency, full_name,
                           form={"child_name": "Nguyễn Văn Bé", "birth_date": "2026-11-01"})


class BackOffice:
    """``python -m deploy.backoffice`` for one agency, as an agency would run it."""

    def __init__(self, agency: str, gateway_url: str, amqp_uri: str, log: Path, *,
                 callback_secret: str | None = None, ask_supplement: bool = True, hand_over: bool = False):
        self.agency = agency
        self.callback_port = free_port() if callback_secret else None
        cmd = [sys.executable, "-m", "deploy.backoffice", "--agency", agency, "--gateway", gateway_url,
               "--amqp", amqp_uri, "--inbox-file", str(log.with_suffix(".inbox"))]
        if ask_supplement:
            cmd.append("--ask-supplement")
        if hand_over:
            cmd.append("--hand-over")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if callback_secret:
            cmd += ["--callback-port", str(self.callback_port)]
            env["AGENCY_SECRET"] = callback_secret
        self.log = log
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until(lambda: f"consuming agency.{agency}" in self.output() or self.proc.poll() is not None,
                   timeout=30, what=f"the back office of {agency} to start")
        assert self.proc.poll() is None, self.output()

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.callback_port}/deliveries"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop(self.proc, group=True, first=signal.SIGINT)


@pytest.fixture(scope="module")
def accounts():
    """The identity test helpers (tests/support/accounts.py)."""
    return account_helpers


@pytest.fixture(scope="module")
def procedure(gateway_url) -> dict:
    status, body, _ = http(f"{gateway_url}/api/v1/procedures/{PROCEDURE}")
    assert status == 200, body
    return body


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")
