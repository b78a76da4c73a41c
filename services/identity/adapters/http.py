"""Adapters for real outside parties over HTTPS with JSON.

Each party is reached at a configured base URL with a bearer API key
(``CARRIER_URL`` / ``CARRIER_API_KEY``, ``BHXH_URL`` / ``BHXH_API_KEY``, ``SMS_URL`` /
``SMS_API_KEY``); the exchanges are the ones the interfaces describe:
``GET {CARRIER_URL}/subscribers/{phone}`` → ``{cccd, carrier}`` (404: unknown number),
``GET {BHXH_URL}/insured/{code}`` → ``{cccd, full_name, date_of_birth}`` (404: unknown code),
``POST {SMS_URL}/messages`` ``{to, text}`` → 2xx. A timeout, a refused connection or a 5xx is
``Unavailable`` (503 to the client, retry later); nothing of the message is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import requests

from portal_common import config
from portal_common.errors import Unavailable
from services.identity.adapters import InsuredRecord, SubscriberRecord

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0


class _Party:
    name = ""

    def __init__(self) -> None:
        self.base = (config.env(f"{self.name}_URL", "", "identity") or "").rstrip("/")
        self.key = config.env(f"{self.name}_API_KEY", "", "identity") or ""
        self.session = requests.Session()

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response | None:
        if not self.base:
            raise Unavailable("adapter_unavailable", f"The {self.name.lower()} adapter has no URL configured.")
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            resp = self.session.request(method, self.base + path, headers=headers, timeout=TIMEOUT_S, **kw)
        except requests.RequestException as exc:
            log.warning("%s adapter unreachable: %s", self.name.lower(), type(exc).__name__)
            raise Unavailable("adapter_unavailable", "An outside registry did not answer; retry later.") from None
        if resp.status_code == 404:
            return None
        if resp.status_code >= 300:
            log.warning("%s adapter answered %s", self.name.lower(), resp.status_code)
            raise Unavailable("adapter_unavailable", "An outside registry did not answer; retry later.")
        return resp


class HttpCarrierRegistry(_Party):
    name = "CARRIER"

    def subscriber(self, phone: str) -> SubscriberRecord | None:
        resp = self._request("GET", f"/subscribers/{phone}")
        if resp is None:
            return None
        body = resp.json()
        return SubscriberRecord(phone, body.get("cccd"), str(body.get("carrier", "unknown")))


class HttpSocialInsuranceRegistry(_Party):
    name = "BHXH"

    def insured(self, bhxh_code: str) -> InsuredRecord | None:
        resp = self._request("GET", f"/insured/{bhxh_code}")
        if resp is None:
            return None
        body = resp.json()
        dob = body.get("date_of_birth")
        return InsuredRecord(bhxh_code, str(body.get("cccd", "")), str(body.get("full_name", "")),
                             dt.date.fromisoformat(dob) if dob else None)


class HttpSmsGateway(_Party):
    name = "SMS"

    def send(self, phone: str, text: str, reference: str | None = None) -> None:
        body = {"to": phone, "text": text, **({"reference": reference} if reference else {})}
        if self._request("POST", "/messages", json=body) is None:
            raise Unavailable("adapter_unavailable", "The SMS gateway refused the message; retry later.")
