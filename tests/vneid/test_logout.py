"""Back-channel logout from VNeID ends the account's sessions at the gateway within a second."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.vneid.support import event_types, new_identity, sign_in, standin_url

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _me(gateway_url: str, token: str) -> int:
    return requests.get(f"{gateway_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).status_code


def test_backchannel_logout_ends_every_session(gateway_url, system, migrated_database):
    person = new_identity(gateway_url)
    first = sign_in(gateway_url, person["cccd"]).json()
    second = sign_in(gateway_url, person["cccd"]).json()
    assert _me(gateway_url, first["access_token"]) == 200
    sent = requests.post(f"{standin_url(system)}/dev/logout", json={"cccd": person["cccd"]}, timeout=30).json()
    assert sent["status"] == 200, sent
    assert json.loads(sent["body"])["sessions_ended"] == 2
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and _me(gateway_url, first["access_token"]) != 401:
        time.sleep(0.05)
    assert _me(gateway_url, first["access_token"]) == 401
    assert _me(gateway_url, second["access_token"]) == 401
    refreshed = requests.post(f"{gateway_url}/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]},
                              timeout=30)
    assert refreshed.status_code == 401
    types = event_types(migrated_database, first["account_id"])
    assert "VneidLogoutReceived" in types and "SignedOut" in types
    after = sign_in(gateway_url, person["cccd"])  # signing in again works
    assert after.status_code == 200 and _me(gateway_url, after.json()["access_token"]) == 200
    replayed = requests.post(f"{gateway_url}/api/v1/auth/vneid/backchannel-logout",
                             data={"logout_token": sent["logout_token"]}, timeout=30)
    assert replayed.status_code == 401  # a logout token works once
    time.sleep(1.0)
    assert _me(gateway_url, after.json()["access_token"]) == 200


def test_a_forged_or_replayed_logout_token_ends_nothing(gateway_url, system):
    person = new_identity(gateway_url)
    tokens = sign_in(gateway_url, person["cccd"]).json()
    forged = requests.post(f"{gateway_url}/api/v1/auth/vneid/backchannel-logout",
                           data={"logout_token": tokens["access_token"]}, timeout=30)
    assert forged.status_code == 401
    wrong_aud = requests.post(f"{standin_url(system)}/dev/logout",
                              json={"cccd": person["cccd"], "claims": {"aud": "someone-else"}}, timeout=30).json()
    assert wrong_aud["status"] == 401
    with_nonce = requests.post(f"{standin_url(system)}/dev/logout",
                               json={"cccd": person["cccd"], "claims": {"nonce": "x"}}, timeout=30).json()
    assert with_nonce["status"] == 401
    missing = requests.post(f"{gateway_url}/api/v1/auth/vneid/backchannel-logout", data={}, timeout=30)
    assert missing.status_code == 422
    time.sleep(1.0)
    assert _me(gateway_url, tokens["access_token"]) == 200
