"""The HTTP adapters for the real carrier, social-insurance and SMS parties, against a small
local HTTP server playing each party (answers, unknown records, failures, timeouts)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal_common.errors import Unavailable
from services.identity.adapters import http as http_adapters

SEEN: list[dict] = []


class Party(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        SEEN.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if self.path == "/subscribers/0912345678":
            self._reply(200, {"cccd": "001090012345", "carrier": "viettel"})
        elif self.path == "/insured/0123456789":
            self._reply(200, {"cccd": "001090012345", "full_name": "Nguyễn Văn A", "date_of_birth": "1990-05-01"})
        elif self.path.endswith("/0999999999"):
            self._reply(500, {"error": "down"})
        else:
            self._reply(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        SEEN.append({"path": self.path, "body": body})
        self._reply(202 if body["to"] != "0999999999" else 503)


@pytest.fixture(scope="module")
def party_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Party)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def configured(monkeypatch, party_url):
    for name in ("CARRIER", "BHXH", "SMS"):
        monkeypatch.setenv(f"IDENTITY_{name}_URL", party_url)
        monkeypatch.setenv(f"IDENTITY_{name}_API_KEY", f"key-{name.lower()}")
    SEEN.clear()


def test_carrier(configured):
    carrier = http_adapters.HttpCarrierRegistry()
    record = carrier.subscriber("0912345678")
    assert (record.cccd, record.carrier) == ("001090012345", "viettel")
    assert SEEN[-1]["auth"] == "Bearer key-carrier"
    assert carrier.subscriber("0911111111") is None
    with pytest.raises(Unavailable):
        carrier.subscriber("0999999999")


def test_social_insurance(configured):
    registry = http_adapters.HttpSocialInsuranceRegistry()
    insured = registry.insured("0123456789")
    assert insured.full_name == "Nguyễn Văn A" and insured.date_of_birth == dt.date(1990, 5, 1)
    assert registry.insured("0000000000") is None


def test_sms(configured):
    sms = http_adapters.HttpSmsGateway()
    sms.send("0912345678", "hello")
    assert SEEN[-1] == {"path": "/messages", "body": {"to": "0912345678", "text": "hello"}}
    with pytest.raises(Unavailable):
        sms.send("0999999999", "hello")


def test_unconfigured_or_unreachable(monkeypatch):
    monkeypatch.delenv("IDENTITY_CARRIER_URL", raising=False)
    monkeypatch.delenv("CARRIER_URL", raising=False)
    with pytest.raises(Unavailable) as err:
        http_adapters.HttpCarrierRegistry().subscriber("0912345678")
    assert err.value.code == "adapter_unavailable"
    monkeypatch.setenv("IDENTITY_CARRIER_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(Unavailable):
        http_adapters.HttpCarrierRegistry().subscriber("0912345678")


def test_configuration_picks_each_adapter():
    import dataclasses

    from services.identity import adapters
    from services.identity.adapters import local
    from services.identity.settings import load

    settings = dataclasses.replace(load(), carrier_adapter="http", bhxh_adapter="local", sms_adapter="http")
    built = adapters.build(settings, db=None)
    assert isinstance(built.carrier, http_adapters.HttpCarrierRegistry)
    assert isinstance(built.social_insurance, local.LocalSocialInsuranceRegistry)
    assert isinstance(built.sms, http_adapters.HttpSmsGateway)
    with pytest.raises(ValueError, match="unknown adapter"):
        adapters.build(dataclasses.replace(settings, sms_adapter="pigeon"), db=None)
