"""Digital-signature SIM / USB token registration and sign-in over HTTP, with a test CA:
success for citizens and businesses, replayed challenge, bad signature, untrusted CA,
expired certificate, wrong key usage, wrong holder."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from tests.identity.conftest import assert_problem
from tests.identity.pki import NOW, make_leaf
from tests.support import accounts

pytestmark = pytest.mark.integration


def _challenge(api, purpose: str) -> dict:
    reply = api("POST", "/api/v1/auth/challenge", {"purpose": purpose})
    assert reply.status == 201 and reply["challenge"], reply
    return reply.body


def _proof(api, pki, leaf, purpose: str, sign_text: str | None = None, chain=None) -> dict:
    ch = _challenge(api, purpose)
    return {"certificate_pem": leaf.pem, "chain_pem": pki.chain if chain is None else chain,
            "challenge_id": ch["challenge_id"], "signature": leaf.sign(sign_text or ch["challenge"])}


def _tax_code() -> str:
    return f"01{random.randrange(10**8):08d}"


def test_citizen_registers_and_signs_in_with_a_usb_token(api, pki):
    cccd = accounts.random_person()["cccd"]
    leaf = pki.citizen(cccd, cn="TRAN THI B")
    reg = api("POST", "/api/v1/auth/register/certificate",
              {**_proof(api, pki, leaf, "register"), "account_type": "citizen", "certificate_kind": "usb_token"})
    assert reg.status == 201, reg
    me = api("GET", "/api/v1/me", token=reg["access_token"])
    assert me["cccd"] == cccd and me["full_name"] == "TRAN THI B" and me["methods"] == ["certificate"]
    login = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})
    assert login.status == 200 and login["account_id"] == reg["account_id"] and login["refresh_token"]
    # a renewed certificate for the same CCCD from the trusted CA also signs in
    renewed = pki.citizen(cccd, key_kind="rsa")
    again = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, renewed, "login")})
    assert again.status == 200 and again["account_id"] == reg["account_id"]


def test_business_registers_with_a_signature_sim(api, pki, identity_db):
    tax = _tax_code()
    leaf = pki.business(tax)
    body = {**_proof(api, pki, leaf, "register"), "account_type": "business", "certificate_kind": "sim",
            "business_name": "Công ty TNHH Thử Nghiệm", "representative_cccd": accounts.random_person()["cccd"]}
    reg = api("POST", "/api/v1/auth/register/certificate", body)
    assert reg.status == 201 and reg["role"] == "business", reg
    me = api("GET", "/api/v1/me", token=reg["access_token"])
    assert me["tax_code"] == tax and me["representative_cccd"] == body["representative_cccd"]
    with identity_db.transaction() as cur:
        cur.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                    (f"account-{reg['account_id']}",))
        events = cur.fetchall()
    assert [e["event_type"] for e in events] == ["BusinessRegistered", "AccountVerified", "SignInSucceeded"]
    assert events[0]["payload"]["certificate_kind"] == "sim"
    # the same holder cannot register twice
    body2 = {**body, **_proof(api, pki, leaf, "register")}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body2), 409, "account_exists")


def test_a_business_needs_its_representative(api, pki):
    leaf = pki.business(_tax_code())
    body = {**_proof(api, pki, leaf, "register"), "account_type": "business"}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body), 422, "invalid_cccd")


def test_a_replayed_challenge_is_refused(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    proof = _proof(api, pki, leaf, "register")
    assert api("POST", "/api/v1/auth/register/certificate", proof).status == 201
    assert_problem(api("POST", "/api/v1/auth/register/certificate", proof), 401, "challenge_replayed")
    login = _proof(api, pki, leaf, "login")
    assert api("POST", "/api/v1/auth/login", {"method": "certificate", **login}).status == 200
    assert_problem(api("POST", "/api/v1/auth/login", {"method": "certificate", **login}), 401,
                   "challenge_replayed")


def test_a_challenge_is_single_use_even_when_the_attempt_fails(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    proof = _proof(api, pki, leaf, "register", sign_text="not the challenge")
    assert_problem(api("POST", "/api/v1/auth/register/certificate", proof), 401, "signature_invalid")
    ch = _challenge(api, "register")
    fixed = {**proof, "challenge_id": ch["challenge_id"], "signature": leaf.sign(ch["challenge"])}
    assert api("POST", "/api/v1/auth/register/certificate", fixed).status == 201
    retry = {**proof, "signature": leaf.sign("anything")}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", retry), 401, "challenge_replayed")


def test_challenge_for_another_purpose_or_expired(api, pki, identity_db):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    assert_problem(api("POST", "/api/v1/auth/register/certificate", _proof(api, pki, leaf, "login")), 401,
                   "challenge_invalid")
    proof = _proof(api, pki, leaf, "register")
    with identity_db.transaction() as cur:
        cur.execute("UPDATE challenges SET expires_at = now() - interval '1 second' WHERE id = %s",
                    (proof["challenge_id"],))
    assert_problem(api("POST", "/api/v1/auth/register/certificate", proof), 401, "challenge_expired")
    unknown = {**proof, "challenge_id": "6f1c1a10-0000-4000-8000-000000000001"}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", unknown), 401, "challenge_invalid")


@pytest.mark.parametrize(("make", "code"), [
    (lambda pki, cccd: make_leaf(pki.stranger, f"CCCD:{cccd}"), "certificate_untrusted"),
    (lambda pki, cccd: pki.citizen(cccd, not_before=NOW - dt.timedelta(days=400),
                                   not_after=NOW - dt.timedelta(days=1)), "certificate_expired"),
    (lambda pki, cccd: pki.citizen(cccd, signing=False), "certificate_key_usage"),
    (lambda pki, cccd: make_leaf(pki.intermediate, "no identifier here"), "certificate_no_identifier"),
])
def test_refused_certificates(api, pki, make, code):
    leaf = make(pki, accounts.random_person()["cccd"])
    reg = api("POST", "/api/v1/auth/register/certificate", _proof(api, pki, leaf, "register"))
    assert_problem(reg, 422, code)
    login = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})
    assert_problem(login, 422, code)


def test_missing_intermediate_means_untrusted(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    reply = api("POST", "/api/v1/auth/register/certificate", _proof(api, pki, leaf, "register", chain=[]))
    assert_problem(reply, 422, "certificate_untrusted")


def test_signature_by_another_key(api, pki):
    cccd = accounts.random_person()["cccd"]
    leaf, impostor = pki.citizen(cccd), pki.citizen(cccd)
    ch = _challenge(api, "register")
    body = {"certificate_pem": leaf.pem, "chain_pem": pki.chain, "challenge_id": ch["challenge_id"],
            "signature": impostor.sign(ch["challenge"])}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body), 401, "signature_invalid")


def test_sign_in_for_a_holder_without_an_account(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    reply = api("POST", "/api/v1/auth/login", {"method": "certificate", **_proof(api, pki, leaf, "login")})
    assert_problem(reply, 401, "invalid_credentials")


def test_a_citizen_certificate_cannot_open_a_business_account(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    body = {**_proof(api, pki, leaf, "register"), "account_type": "business",
            "representative_cccd": accounts.random_person()["cccd"]}
    assert_problem(api("POST", "/api/v1/auth/register/certificate", body), 422, "certificate_wrong_holder")


@pytest.mark.parametrize("change", [
    {"certificate_pem": "x" * 30_000}, {"certificate_pem": "garbage"}, {"signature": "s" * 5000},
    {"challenge_id": "nope"}, {"chain_pem": ["a"] * 6}, {"account_type": "officer"},
    {"certificate_kind": "floppy"},
])
def test_hostile_certificate_bodies(api, pki, change):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    body = {**_proof(api, pki, leaf, "register"), **change}
    reply = api("POST", "/api/v1/auth/register/certificate", body)
    assert 400 <= reply.status < 500 and reply.code in ("validation_failed", "certificate_invalid"), reply


def test_operators_cannot_trust_a_leaf_as_a_ca(api, pki):
    leaf = pki.citizen(accounts.random_person()["cccd"])
    assert_problem(api("POST", "/api/v1/dev/trusted-cas", {"certificate_pem": leaf.pem}), 422, "not_a_ca")
