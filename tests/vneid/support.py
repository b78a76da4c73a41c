"""Signing in with VNeID through the running system: the start, the real redirect from the
local stand-in (followed by hand, ``allow_redirects=False``), and the completion."""

from __future__ import annotations

import urllib.parse
from typing import Any

import requests

from tests.support.accounts import random_person

PORTAL_REDIRECT = "http://127.0.0.1:8080/dang-nhap/vneid"  # registered by the launcher, never fetched


def new_identity(gateway_url: str, level: int = 2, **extra: Any) -> dict:
    """A fresh test identity in the stand-in (through the gateway's dev path)."""
    person = random_person()
    body = {k: person[k] for k in ("cccd", "full_name", "date_of_birth", "gender", "phone")}
    body.update(level=level, **extra)
    resp = requests.post(f"{gateway_url}/api/v1/dev/vneid-identities", json=body, timeout=30)
    assert resp.status_code == 201, resp.text
    return {**body, **{k: v for k, v in person.items() if k == "password"}}


def start(gateway_url: str, cccd: str | None = None) -> dict:
    resp = requests.post(f"{gateway_url}/api/v1/auth/vneid/start", json={"redirect_uri": PORTAL_REDIRECT},
                         timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def authorize(started: dict, cccd: str) -> dict:
    """Open the authorization URL with ``login_hint``: the stand-in answers 302 to the redirect URI."""
    url = f"{started['authorization_url']}&login_hint={cccd}"
    resp = requests.get(url, allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(PORTAL_REDIRECT + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    return query


def complete(gateway_url: str, code: str, state: str) -> requests.Response:
    return requests.post(f"{gateway_url}/api/v1/auth/vneid/complete", json={"code": code, "state": state},
                         timeout=30)


def sign_in(gateway_url: str, cccd: str) -> requests.Response:
    """The whole flow; the completion's response."""
    started = start(gateway_url)
    back = authorize(started, cccd)
    assert back["state"] == started["state"]
    return complete(gateway_url, back["code"], back["state"])


def standin_url(system) -> str:
    return system.env("identity")["VNEID_ISSUER"]


def identity_query(database_url: str, sql: str, params: tuple = ()) -> list[dict]:
    """Read identity's tables directly (to prove what was, or was not, written)."""
    from psycopg2.extras import RealDictCursor

    from portal_common.db import connect

    conn = connect(database_url, "identity", application_name="vneid-test")
    try:
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def event_types(database_url: str, account_id: str) -> list[str]:
    rows = identity_query(database_url, "SELECT event_type FROM events WHERE stream_id = %s ORDER BY version",
                          (f"account-{account_id}",))
    return [r["event_type"] for r in rows]
