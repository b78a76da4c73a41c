"""An account that already has the CCCD is linked to VNeID only after its holder proves it is
theirs: a one-time code to its registered phone, or its password. A claim alone takes nothing."""

from __future__ import annotations

import pytest
import requests

from tests.support.accounts import latest_code, register_citizen
from tests.vneid.support import event_types, identity_query, new_identity, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _link(gateway_url: str, body: dict) -> requests.Response:
    return requests.post(f"{gateway_url}/api/v1/auth/vneid/link", json=body, timeout=30)


def _existing_with_identity(gateway_url: str, level: int = 2) -> tuple[dict, dict]:
    """A registered citizen, and the same person known to VNeID (same CCCD, another phone)."""
    citizen = register_citizen(gateway_url)
    identity = new_identity(gateway_url, level=level)
    resp = requests.post(f"{gateway_url}/api/v1/dev/vneid-identities", json={
        **{k: identity[k] for k in ("full_name", "date_of_birth", "gender", "phone", "level")},
        "cccd": citizen["cccd"]}, timeout=30)
    assert resp.status_code == 201
    return citizen, identity


def _link_required(gateway_url: str, cccd: str) -> dict:
    resp = sign_in(gateway_url, cccd)
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["code"] == "vneid_link_required" and body["link_token"]
    assert "access_token" not in body
    return body


def _links(database_url: str, account_id: str) -> list[dict]:
    return identity_query(database_url, "SELECT subject, proof FROM vneid_links WHERE account_id = %s",
                          (account_id,))


def test_existing_account_needs_proof_and_a_wrong_password_links_nothing(gateway_url, migrated_database):
    citizen, _ = _existing_with_identity(gateway_url)
    problem = _link_required(gateway_url, citizen["cccd"])
    assert set(problem["proof_methods"]) == {"otp", "password"}
    wrong = _link(gateway_url, {"link_token": problem["link_token"], "method": "password",
                                "password": citizen["password"] + "x"})
    assert wrong.status_code == 401
    assert _links(migrated_database, citizen["account_id"]) == []
    forged = _link(gateway_url, {"link_token": "not-a-link-token", "method": "password",
                                 "password": citizen["password"]})
    assert forged.status_code == 401 and forged.json()["code"] == "vneid_link_invalid"
    assert "VneidLinked" not in event_types(migrated_database, citizen["account_id"])


def test_the_password_links_and_signs_in_as_the_existing_account(gateway_url, migrated_database):
    citizen, _ = _existing_with_identity(gateway_url)
    problem = _link_required(gateway_url, citizen["cccd"])
    resp = _link(gateway_url, {"link_token": problem["link_token"], "method": "password",
                               "password": citizen["password"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["account_id"] == citizen["account_id"] and resp.json()["assurance_level"] == 2
    assert [r["proof"] for r in _links(migrated_database, citizen["account_id"])] == ["password"]
    assert "VneidLinked" in event_types(migrated_database, citizen["account_id"])
    again = _link(gateway_url, {"link_token": problem["link_token"], "method": "password",
                                "password": citizen["password"]})
    assert again.status_code == 401  # the link token is spent
    later = sign_in(gateway_url, citizen["cccd"])  # now linked: straight in
    assert later.status_code == 200 and later.json()["account_id"] == citizen["account_id"]


def test_a_code_to_the_registered_phone_links(gateway_url, migrated_database):
    citizen, _ = _existing_with_identity(gateway_url, level=1)
    problem = _link_required(gateway_url, citizen["cccd"])
    sent = _link(gateway_url, {"link_token": problem["link_token"], "method": "otp"})
    assert sent.status_code == 202, sent.text
    code = latest_code(gateway_url, citizen["phone"])  # the account's phone, not the one VNeID states
    wrong = _link(gateway_url, {"link_token": problem["link_token"], "method": "otp",
                                "otp": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 401
    assert _links(migrated_database, citizen["account_id"]) == []
    resp = _link(gateway_url, {"link_token": problem["link_token"], "method": "otp", "otp": code})
    assert resp.status_code == 200, resp.text
    assert resp.json()["account_id"] == citizen["account_id"] and resp.json()["assurance_level"] == 1
    assert [r["proof"] for r in _links(migrated_database, citizen["account_id"])] == ["otp"]
    assert "VneidLinked" in event_types(migrated_database, citizen["account_id"])


def test_guessing_the_code_spends_the_link(gateway_url, migrated_database):
    citizen, _ = _existing_with_identity(gateway_url)
    problem = _link_required(gateway_url, citizen["cccd"])
    assert _link(gateway_url, {"link_token": problem["link_token"], "method": "otp"}).status_code == 202
    code = latest_code(gateway_url, citizen["phone"])
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert _link(gateway_url, {"link_token": problem["link_token"], "method": "otp", "otp": wrong}).status_code \
            in (401, 429)
    late = _link(gateway_url, {"link_token": problem["link_token"], "method": "otp", "otp": code})
    assert late.status_code in (401, 429) and "access_token" not in late.json()
    assert _links(migrated_database, citizen["account_id"]) == []
