"""Accounts for tests and benchmarks, made through the gateway's public and dev endpoints.

``register_citizen(gateway_url)`` registers a fresh citizen the way a real one would (a
random valid CCCD, its number put in the local carrier registry, the one-time code read
from the local SMS outbox), signs in and returns the tokens with the person's details.
``staff_token(gateway_url, role, agency_code)`` returns a development access token for an
officer, agency system, editor or operator.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import secrets
import urllib.error
import urllib.request
from typing import Any

PASSWORD = "Mat-khau-Th0"  # meets the policy; each account gets a random suffix
PROVINCES = ("001", "079", "051", "031", "048", "092")


class GatewayError(AssertionError):
    def __init__(self, status: int, body: Any):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def call(url: str, method: str = "GET", body: Any = None, token: str | None = None,
         expect: tuple[int, ...] | None = (200, 201, 202, 204)) -> Any:
    """One JSON request; raises ``GatewayError`` for a status outside ``expect``."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    payload = json.loads(raw) if raw else None
    if expect is not None and status not in expect:
        raise GatewayError(status, payload)
    return payload


def random_person(born: dt.date | None = None, gender: str | None = None) -> dict:
    """A person with a structurally valid, random CCCD and a random mobile number."""
    rnd = random.SystemRandom()
    gender = gender or rnd.choice(("male", "female"))
    born = born or dt.date(rnd.randint(1950, 2006), rnd.randint(1, 12), rnd.randint(1, 28))
    century = (born.year - 1900) // 100
    digit = century * 2 + (1 if gender == "female" else 0)
    cccd = f"{rnd.choice(PROVINCES)}{digit}{born.year % 100:02d}{rnd.randrange(10**6):06d}"
    phone = f"09{rnd.randrange(10**8):08d}"
    return {"cccd": cccd, "full_name": "Nguyễn Văn Thử", "date_of_birth": born.isoformat(), "gender": gender,
            "phone": phone, "password": f"{PASSWORD}{secrets.token_hex(3)}"}


def latest_code(gateway_url: str, phone: str) -> str:
    """The newest one-time code the local SMS stand-in sent to ``phone``."""
    outbox = call(f"{gateway_url}/api/v1/dev/sms-outbox?phone={phone}")
    for message in outbox["items"]:
        found = re.search(r"\b(\d{6})\b", message["body"])
        if found:
            return found.group(1)
    raise AssertionError(f"no code was sent to {phone}")


def add_carrier_record(gateway_url: str, phone: str, cccd: str) -> None:
    call(f"{gateway_url}/api/v1/dev/carrier-records", "POST", {"phone": phone, "cccd": cccd})


def sign_in(gateway_url: str, id_number: str, password: str, phone: str) -> dict:
    """Password + one-time code sign-in; returns the token response."""
    base = f"{gateway_url}/api/v1/auth"
    step = call(f"{base}/login", "POST", {"method": "password", "cccd": id_number, "password": password})
    code = latest_code(gateway_url, phone)
    return call(f"{base}/login/confirm", "POST", {"login_id": step["login_id"], "otp": code})


def register_citizen(gateway_url: str, **overrides: Any) -> dict:
    """Register and sign in a new citizen; returns tokens plus cccd, password, phone, account_id."""
    person = {**random_person(), **overrides}
    add_carrier_record(gateway_url, person["phone"], person["cccd"])
    base = f"{gateway_url}/api/v1/auth"
    started = call(f"{base}/register/mobile", "POST", person)
    code = latest_code(gateway_url, person["phone"])
    registered = call(f"{base}/register/mobile/confirm", "POST",
                      {"registration_id": started["registration_id"], "otp": code})
    tokens = sign_in(gateway_url, person["cccd"], person["password"], person["phone"])
    return {**person, **tokens, "account_id": registered["account_id"]}


def staff_token(gateway_url: str, role: str, agency_code: str | None = None) -> str:
    """A development access token for a staff role (officer and agency_system need an agency)."""
    body: dict[str, Any] = {"role": role}
    if agency_code is not None:
        body["agency_code"] = agency_code
    return call(f"{gateway_url}/api/v1/dev/tokens", "POST", body)["access_token"]
