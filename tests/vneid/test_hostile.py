"""Hostile input to sign-in with VNeID: each attempt is refused and nothing is created.

Forged ID tokens come from the local stand-in's ``/dev/forge`` knob: the next ID token of an
identity gets a wrong audience, issuer, nonce, an expired lifetime, ``alg: none``, an HMAC keyed
with the provider's public key, a signature by a key the JWKS lacks, or an unknown key id.
"""

from __future__ import annotations

import time

import pytest
import requests

from portal_common.db import connect
from tests.vneid.support import authorize, complete, new_identity, sign_in, standin_url, start

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _accounts_with(database_url: str, cccd: str) -> int:
    conn = connect(database_url, "identity", application_name="vneid-test")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM accounts WHERE identifier = %s", (cccd,))
            row = cur.fetchone()
            return row["n"] if isinstance(row, dict) else row[0]
    finally:
        conn.close()


def _forge(system, cccd: str, **knob) -> None:
    resp = requests.post(f"{standin_url(system)}/dev/forge", json={"cccd": cccd, **knob}, timeout=10)
    assert resp.status_code == 200, resp.text


def test_unknown_state_is_refused(gateway_url):
    person = new_identity(gateway_url)
    back = authorize(start(gateway_url), person["cccd"])
    resp = complete(gateway_url, back["code"], "not-a-state-we-issued")
    assert resp.status_code == 401 and resp.json()["code"] == "vneid_state_invalid"


def test_a_state_works_once(gateway_url, migrated_database):
    person = new_identity(gateway_url)
    started = start(gateway_url)
    back = authorize(started, person["cccd"])
    assert complete(gateway_url, back["code"], started["state"]).status_code == 200
    again = authorize(start(gateway_url), person["cccd"])  # a fresh, valid code ...
    resp = complete(gateway_url, again["code"], started["state"])  # ... with the spent state
    assert resp.status_code == 401 and resp.json()["code"] == "vneid_state_invalid"


def test_a_code_works_once(gateway_url):
    person = new_identity(gateway_url)
    first, second = start(gateway_url), start(gateway_url)
    back = authorize(first, person["cccd"])
    assert complete(gateway_url, back["code"], first["state"]).status_code == 200
    resp = complete(gateway_url, back["code"], second["state"])
    assert resp.status_code == 401 and resp.json()["code"] == "vneid_code_invalid"


def test_a_code_with_another_sign_ins_state_fails_pkce(gateway_url, migrated_database):
    person = new_identity(gateway_url)
    first, second = start(gateway_url), start(gateway_url)
    back = authorize(first, person["cccd"])
    resp = complete(gateway_url, back["code"], second["state"])  # the other verifier
    assert resp.status_code == 401 and resp.json()["code"] == "vneid_code_invalid"
    assert _accounts_with(migrated_database, person["cccd"]) == 0


NOW = int(time.time())
FORGERIES = {
    "wrong_aud": {"claims": {"aud": "another-client"}},
    "wrong_aud_list": {"claims": {"aud": ["another-client"]}},
    "wrong_iss": {"claims": {"iss": "http://127.0.0.1:1/not-vneid"}},
    "expired": {"claims": {"exp": NOW - 3600, "iat": NOW - 7200}},
    "issued_long_ago": {"claims": {"iat": NOW - 86400}},
    "no_exp": {"drop": ["exp"]},
    "wrong_nonce": {"claims": {"nonce": "a-nonce-we-never-sent"}},
    "no_nonce": {"drop": ["nonce"]},
    "alg_none": {"sign": "none"},
    "hmac_keyed_with_public_key": {"sign": "hs256_public_key"},
    "bad_signature": {"sign": "other_key"},
    "unknown_kid": {"sign": "unknown_kid"},
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_id_token_is_refused_and_creates_nothing(gateway_url, system, migrated_database, forgery):
    person = new_identity(gateway_url)
    _forge(system, person["cccd"], **FORGERIES[forgery])
    resp = sign_in(gateway_url, person["cccd"])
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "vneid_token_invalid"
    assert "access_token" not in resp.json()
    assert _accounts_with(migrated_database, person["cccd"]) == 0
    assert sign_in(gateway_url, person["cccd"]).status_code == 200  # the knob was for one token only
    assert _accounts_with(migrated_database, person["cccd"]) == 1


def test_key_rotation_between_two_sign_ins(gateway_url, system):
    person = new_identity(gateway_url)
    assert sign_in(gateway_url, person["cccd"]).status_code == 200
    rotated = requests.post(f"{standin_url(system)}/dev/rotate-key", timeout=10).json()
    assert len(rotated["published"]) == 2  # the old key stays published during the overlap
    time.sleep(float(system.env("identity").get("VNEID_JWKS_REFETCH_INTERVAL", "5")) + 0.2)
    resp = sign_in(gateway_url, person["cccd"])  # an unknown kid: identity refetches the JWKS
    assert resp.status_code == 200, resp.text


def test_no_code_state_or_token_reaches_a_log(gateway_url, system):
    person = new_identity(gateway_url)
    started = start(gateway_url)
    back = authorize(started, person["cccd"])
    tokens = complete(gateway_url, back["code"], back["state"]).json()
    time.sleep(0.5)
    logs = "".join(p.read_text(errors="replace") for p in system.log_dir.iterdir())
    for secret in (back["code"], started["state"], tokens["access_token"], tokens["refresh_token"],
                   system.env("identity")["VNEID_CLIENT_SECRET"]):
        assert secret not in logs
