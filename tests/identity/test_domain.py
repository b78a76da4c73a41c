"""Identity's rules without I/O: ID numbers, phones, passwords, codes, lockout, certificates,
tokens."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.http.tokens import KeySet
from portal_common.errors import Unauthorized
from services.identity.domain import certificates as certs
from services.identity.domain import ids, lockout, otp, passwords, tokens
from services.identity.domain.tokens import public_jwk, thumbprint
from tests.identity.pki import NOW, Pki, make_leaf

# -- CCCD and other numbers ---------------------------------------------------------------

@pytest.mark.parametrize(("cccd", "born", "gender"), [
    ("001090012345", dt.date(1990, 5, 1), "male"),
    ("079195000001", dt.date(1995, 1, 1), "female"),
    ("051305123456", dt.date(2005, 12, 31), "female"),
    ("096200000000", dt.date(2000, 1, 1), "male"),
])
def test_well_formed_cccd_matching_the_person(cccd, born, gender):
    assert ids.cccd_problem(cccd, born, gender) is None
    assert ids.cccd_birth(cccd) == (born.year, gender)


@pytest.mark.parametrize(("cccd", "code"), [
    ("00109001234", "invalid_cccd"),       # 11 digits
    ("0010900123456", "invalid_cccd"),     # 13 digits
    ("00109001234a", "invalid_cccd"),      # not digits
    ("003090012345", "invalid_cccd"),      # 003 is no province code
    ("099090012345", "invalid_cccd"),      # nor is 099
    ("", "invalid_cccd"),
    ("001 90012345", "invalid_cccd"),
])
def test_cccd_structure_refused(cccd, code):
    assert ids.cccd_problem(cccd).code == code


def test_cccd_birth_year_and_gender_must_match():
    assert ids.cccd_problem("001090012345", dt.date(1991, 5, 1), "male").code == "cccd_mismatch"
    assert ids.cccd_problem("001090012345", dt.date(1990, 5, 1), "female").code == "cccd_mismatch"
    # the same two year digits in the wrong century
    assert ids.cccd_problem("001290012345", dt.date(1990, 5, 1), "male").code == "cccd_mismatch"


@pytest.mark.parametrize(("raw", "normal"), [
    ("0912345678", "0912345678"), ("+84912345678", "0912345678"), ("84 912 345 678", "0912345678"),
    ("091.234.5678", "0912345678"), ("0312345678", "0312345678"),
    ("0212345678", None), ("091234567", None), ("phone", None), ("09123456789", None),
])
def test_phone_numbers(raw, normal):
    assert ids.normalize_phone(raw) == normal


def test_other_numbers():
    assert ids.is_cmt("123456789") and not ids.is_cmt("12345678")
    assert ids.is_tax_code("0101234567") and ids.is_tax_code("0101234567-001") and not ids.is_tax_code("01012")
    assert ids.is_bhxh_code("0123456789") and not ids.is_bhxh_code("012345678")
    assert ids.mask_phone("0912345678") == "09******78"


# -- passwords ----------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["short1A", "alllowercaseletters", "12345678901", "Password@123",
                                      "Abc\x00defgh12", "x" * 129])
def test_password_policy_refuses(password):
    assert passwords.policy_problems(password)


def test_password_policy_refuses_personal_numbers_and_never_echoes():
    problems = passwords.policy_problems("Xy-001090012345", ("001090012345",))
    assert problems and all("001090012345" not in p for p in problems)


def test_password_policy_accepts_and_hash_verifies():
    good = "Hoa-sen-2025!"
    assert passwords.policy_problems(good, ("001090012345", "0912345678")) == []
    hashed = passwords.hash_password(good)
    assert hashed.startswith("$argon2id$") and good not in hashed
    assert passwords.verify_password(hashed, good)
    assert not passwords.verify_password(hashed, good + "x")
    assert not passwords.verify_password(None, good)  # unknown account: still no
    assert not passwords.verify_password("garbage", good)


# -- one-time codes and lockout -------------------------------------------------------------

def test_codes_are_bound_to_their_owner():
    code = otp.new_code()
    assert len(code) == 6 and code.isdigit()
    stored = otp.code_hash("reg-1", code)
    assert otp.matches("reg-1", code, stored)
    assert not otp.matches("reg-2", code, stored)
    assert not otp.matches("reg-1", f"{(int(code) + 1) % 10**6:06d}", stored)
    assert code not in stored.hex()


def test_lockout_backs_off_and_caps():
    policy = lockout.LockoutPolicy(threshold=3, base_seconds=60, ceiling_seconds=300)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    state = lockout.FailureState(0, 0, None)
    for _ in range(2):
        state = lockout.after_failure(state, policy, t0)
        assert lockout.retry_after(state, t0) is None
    state = lockout.after_failure(state, policy, t0)
    assert lockout.retry_after(state, t0) == 60
    assert lockout.retry_after(state, t0 + dt.timedelta(seconds=61)) is None
    for _ in range(3):
        state = lockout.after_failure(state, policy, t0)
    assert lockout.retry_after(state, t0) == 120
    for _ in range(9):
        state = lockout.after_failure(state, policy, t0)
    assert lockout.retry_after(state, t0) == 300  # capped


# -- certificates ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    return Pki()


def test_a_good_citizen_certificate(pki):
    leaf = pki.citizen("001090012345", cn="NGUYEN VAN A")
    certs.verify_chain(leaf.cert, [pki.intermediate.cert], [pki.root.cert], NOW)
    facts = certs.facts(leaf.cert)
    assert (facts.kind, facts.identifier, facts.common_name) == ("citizen", "001090012345", "NGUYEN VAN A")
    certs.verify_signature(leaf.cert, b"challenge-text", leaf.sign("challenge-text"))


def test_a_business_certificate_with_rsa(pki):
    leaf = pki.business("0101234567", key_kind="rsa")
    certs.verify_chain(leaf.cert, [pki.intermediate.cert], [pki.root.cert], NOW)
    assert certs.facts(leaf.cert).kind == "business" and certs.facts(leaf.cert).identifier == "0101234567"
    certs.verify_signature(leaf.cert, b"abc", leaf.sign("abc"))


def _refused(fn, *args) -> str:
    with pytest.raises(certs.CertificateRefused) as err:
        fn(*args)
    return err.value.code


def test_certificate_refusals(pki):
    leaf = pki.citizen("001090012345")
    assert _refused(certs.verify_chain, leaf.cert, [], [pki.root.cert], NOW) == "certificate_untrusted"
    stranger = make_leaf(pki.stranger, "CCCD:001090012345")
    assert _refused(certs.verify_chain, stranger.cert, [pki.intermediate.cert], [pki.root.cert],
                    NOW) == "certificate_untrusted"
    expired = pki.citizen("001090012345", not_before=NOW - dt.timedelta(days=400),
                          not_after=NOW - dt.timedelta(days=1))
    assert _refused(certs.verify_chain, expired.cert, [pki.intermediate.cert], [pki.root.cert],
                    NOW) == "certificate_expired"
    future = pki.citizen("001090012345", not_before=NOW + dt.timedelta(days=2))
    assert _refused(certs.verify_chain, future.cert, [pki.intermediate.cert], [pki.root.cert],
                    NOW) == "certificate_not_yet_valid"
    encipher = pki.citizen("001090012345", signing=False)
    assert _refused(certs.verify_chain, encipher.cert, [pki.intermediate.cert], [pki.root.cert],
                    NOW) == "certificate_key_usage"
    # a leaf posing as an intermediate cannot extend the chain
    fake = make_leaf(leaf, "CCCD:001090012345")
    assert _refused(certs.verify_chain, fake.cert, [leaf.cert, pki.intermediate.cert], [pki.root.cert],
                    NOW) == "certificate_untrusted"
    assert _refused(certs.verify_signature, leaf.cert, b"the challenge", leaf.sign("another")) == "signature_invalid"
    other = pki.citizen("001090012345")
    assert _refused(certs.verify_signature, leaf.cert, b"x", other.sign("x")) == "signature_invalid"
    assert _refused(certs.verify_signature, leaf.cert, b"x", "%%%not base64") == "signature_invalid"
    assert _refused(certs.facts, make_leaf(pki.intermediate, "someone").cert) == "certificate_no_identifier"
    assert _refused(certs.facts, make_leaf(pki.intermediate, "CCCD:12345").cert) == "certificate_no_identifier"
    assert _refused(certs.load_pem, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----") \
        == "certificate_invalid"


# -- tokens -----------------------------------------------------------------------------------

@pytest.fixture
def keyset():
    key = Ed25519PrivateKey.generate()
    kid = thumbprint(key)
    ks = KeySet(lambda: {"keys": [public_jwk(key, kid)]})
    ks.load({"keys": [public_jwk(key, kid)]})
    return tokens.SigningKey(kid, key), ks


ACCOUNT = {"id": "6f1c1a10-0000-4000-8000-000000000001", "role": "officer", "identifier": "staff:officer:X",
           "agency_code": "P51-STP"}


def test_access_token_is_what_the_gateway_accepts(keyset):
    key, ks = keyset
    token, claims = tokens.access_token(key, ACCOUNT, 600)
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    principal = ks.verify(token)
    assert (principal.account_id, principal.role, principal.agency_code) == (ACCOUNT["id"], "officer", "P51-STP")
    assert claims["typ"] == "access" and claims["exp"] - claims["iat"] == 600


def test_tampered_and_expired_tokens_are_refused(keyset):
    key, ks = keyset
    token, _ = tokens.access_token(key, ACCOUNT, 600)
    head, body, sig = token.split(".")
    forged_claims = jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**jwt.decode(token, options={"verify_signature": False}), "role": "operator"})
        .encode()).decode()
    for bad in (f"{head}.{forged_claims}.{sig}", f"{head}.{body}.{sig[:-4]}AAAA", token[:-1]):
        with pytest.raises(Unauthorized) as err:
            ks.verify(bad)
        assert err.value.code == "invalid_token"
    old, _ = tokens.access_token(key, ACCOUNT, 60, now=time.time() - 3600)
    with pytest.raises(Unauthorized) as err:
        ks.verify(old)
    assert err.value.code == "token_expired"
    stranger = tokens.SigningKey(key.kid, Ed25519PrivateKey.generate())  # same kid, other key
    forged, _ = tokens.access_token(stranger, ACCOUNT, 600)
    with pytest.raises(Unauthorized):
        ks.verify(forged)


def test_refresh_tokens_store_only_a_hash():
    token_id, token, stored = tokens.new_refresh_token()
    parsed = tokens.parse_refresh_token(token)
    assert parsed[0] == token_id and tokens.refresh_matches(parsed[1], stored)
    assert parsed[1].encode() not in stored
    assert not tokens.refresh_matches(parsed[1] + "x", stored)
    for bad in ("", "abc", "nothex.secret", "a" * 500, f"{token_id.hex}."):
        assert tokens.parse_refresh_token(bad) is None
