"""Sign-in with VNeID end to end: start, the stand-in's redirect, complete, ``/api/v1/me``."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.vneid.support import PORTAL_REDIRECT, authorize, complete, new_identity, sign_in, start

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_first_sign_in_creates_the_account_and_me_shows_it(gateway_url):
    person = new_identity(gateway_url, level=2)
    started = start(gateway_url)
    url = started["authorization_url"]
    assert "code_challenge_method=S256" in url and "code_challenge=" in url and "nonce=" in url
    assert f"state={started['state']}" in url
    back = authorize(started, person["cccd"])
    assert back["state"] == started["state"]
    resp = complete(gateway_url, back["code"], back["state"])
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["assurance_level"] == 2 and tokens["refresh_token"] and tokens["expires_in"] > 0
    assert _claims(tokens["access_token"])["acr"] == "2"
    me = requests.get(f"{gateway_url}/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                      timeout=30)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["cccd"] == person["cccd"] and body["full_name"] == person["full_name"]
    assert body["date_of_birth"] == person["date_of_birth"] and body["phone"] == person["phone"]
    assert "vneid" in body["methods"]

    again = sign_in(gateway_url, person["cccd"])  # the second sign-in finds the same account
    assert again.status_code == 200, again.text
    assert again.json()["account_id"] == tokens["account_id"]


def test_level_one_identity_gets_level_one(gateway_url):
    person = new_identity(gateway_url, level=1)
    resp = sign_in(gateway_url, person["cccd"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["assurance_level"] == 1
    assert _claims(resp.json()["access_token"])["acr"] == "1"


def test_without_login_hint_the_stand_in_shows_a_sign_in_page(gateway_url):
    person = new_identity(gateway_url)
    started = start(gateway_url)
    page = requests.get(started["authorization_url"], allow_redirects=False, timeout=30)
    assert page.status_code == 200 and "<form" in page.text
    form = dict(__import__("re").findall(r'name="([a-z_]+)" value="([^"]*)"', page.text))
    form["cccd"] = person["cccd"]
    posted = requests.post(started["authorization_url"].split("?")[0], data=form, allow_redirects=False,
                           timeout=30)
    assert posted.status_code == 302 and posted.headers["Location"].startswith(PORTAL_REDIRECT)


def test_an_unregistered_redirect_uri_is_refused(gateway_url):
    resp = requests.post(f"{gateway_url}/api/v1/auth/vneid/start",
                         json={"redirect_uri": "https://evil.example/cb"}, timeout=30)
    assert resp.status_code == 422
    assert resp.json()["code"] == "redirect_uri_not_registered"


def test_an_organisation_signs_in_as_the_business_applicant(gateway_url):
    import random

    tax_code = f"0{random.randrange(10**9):09d}"
    person = new_identity(gateway_url, level=2, tax_code=tax_code, organization_name="Công ty TNHH Thử Nghiệm")
    resp = sign_in(gateway_url, person["cccd"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["role"] == "business"
    me = requests.get(f"{gateway_url}/api/v1/me", headers={"Authorization": f"Bearer {resp.json()['access_token']}"},
                      timeout=30).json()
    assert (me["role"], me["tax_code"], me["representative_cccd"]) == ("business", tax_code, person["cccd"])
    assert me["full_name"] == "Công ty TNHH Thử Nghiệm"


def test_every_vneid_path_is_in_openapi_and_only_the_contract_ones_in_api_md(gateway_url):
    from pathlib import Path

    paths = requests.get(f"{gateway_url}/openapi.json", timeout=30).json()["paths"]
    for path in ("/api/v1/auth/vneid/start", "/api/v1/auth/vneid/complete", "/api/v1/auth/vneid/link",
                 "/api/v1/auth/vneid/backchannel-logout", "/api/v1/dev/vneid-identities"):
        assert "post" in paths[path], path
    api_md = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()
    assert "/api/v1/auth/vneid/start" in api_md and "/api/v1/auth/vneid/link" not in api_md
    assert "/api/v1/auth/vneid/link" in (Path(__file__).resolve().parents[2] / "docs" / "vneid.md").read_text()
