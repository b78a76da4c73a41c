"""Sign-in, tokens and sign-out over HTTP against the running system: password + one-time
code, old CMT, no user enumeration, lockout, refresh rotation and revocation, tampered and
expired tokens, key rotation."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from nameko.standalone.rpc import ClusterRpcProxy

from services.identity.domain.tokens import SigningKey, access_token
from tests.identity.conftest import assert_problem
from tests.support import accounts

pytestmark = pytest.mark.integration


@pytest.fixture
def citizen(gateway_url):
    return accounts.register_citizen(gateway_url)


def _login(api, id_number, password):
    return api("POST", "/api/v1/auth/login", {"method": "password", "cccd": id_number, "password": password})


def test_password_then_code_gives_working_tokens(api, gateway_url, citizen):
    step = _login(api, citizen["cccd"], citizen["password"])
    assert step.status == 200 and step["next"] == "otp" and "*" in step["otp_sent_to"]
    code = accounts.latest_code(gateway_url, citizen["phone"])
    tokens = api("POST", "/api/v1/auth/login/confirm", {"login_id": step["login_id"], "otp": code})
    assert tokens.status == 200 and tokens["token_type"] == "Bearer" and tokens["expires_in"] <= 900
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == citizen["account_id"] and claims["role"] == "citizen" and claims["idn"] == citizen["cccd"]
    assert claims["iss"] == "portal-identity" and claims["aud"] == "portal" and claims["typ"] == "access"
    assert jwt.get_unverified_header(tokens["access_token"])["kid"]
    assert api("GET", "/api/v1/me", token=tokens["access_token"])["account_id"] == citizen["account_id"]
    # the code is single use
    again = api("POST", "/api/v1/auth/login/confirm", {"login_id": step["login_id"], "otp": code})
    assert_problem(again, 400, "otp_used")


def test_no_user_enumeration(api, citizen):
    wrong = _login(api, citizen["cccd"], citizen["password"] + "x")
    unknown = _login(api, accounts.random_person()["cccd"], citizen["password"])
    assert_problem(wrong, 401, "invalid_credentials")
    assert_problem(unknown, 401, "invalid_credentials")
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(wrong.body) == strip(unknown.body)
    assert citizen["password"] not in json.dumps(wrong.body)


def test_wrong_and_expired_login_codes(api, gateway_url, citizen, identity_db):
    step = _login(api, citizen["cccd"], citizen["password"])
    good = accounts.latest_code(gateway_url, citizen["phone"])
    wrong = api("POST", "/api/v1/auth/login/confirm",
                {"login_id": step["login_id"], "otp": f"{(int(good) + 1) % 10**6:06d}"})
    assert_problem(wrong, 400, "otp_invalid")
    with identity_db.transaction() as cur:
        cur.execute("UPDATE logins SET otp_expires_at = now() - interval '1 second' WHERE id = %s",
                    (step["login_id"],))
    expired = api("POST", "/api/v1/auth/login/confirm", {"login_id": step["login_id"], "otp": good})
    assert_problem(expired, 400, "otp_expired")


def test_lockout_after_repeated_failures_even_for_the_right_password(api, gateway_url, citizen, identity_db):
    for _ in range(4):
        assert_problem(_login(api, citizen["cccd"], "Wrong-pass-123"), 401, "invalid_credentials")
    locked = _login(api, citizen["cccd"], "Wrong-pass-123")  # the fifth failure locks
    assert_problem(locked, 401, "invalid_credentials")
    reply = _login(api, citizen["cccd"], citizen["password"])
    assert_problem(reply, 429, "signin_locked")
    assert int(reply.headers["Retry-After"]) > 0
    with identity_db.transaction() as cur:
        cur.execute("SELECT event_type FROM events WHERE stream_id = %s", (f"account-{citizen['account_id']}",))
        types = [r["event_type"] for r in cur.fetchall()]
        # the lock has run out: the right password works again and the back-off remembers
        cur.execute("UPDATE signin_failures SET locked_until = now() - interval '1 second' "
                    "WHERE scope = 'account' AND key = %s", (citizen["account_id"],))
    assert types.count("SignInFailed") == 5 and types.count("AccountLocked") == 1
    assert _login(api, citizen["cccd"], citizen["password"]).status == 200


def test_unknown_identifiers_lock_the_same_way(api):
    cccd = accounts.random_person()["cccd"]
    for _ in range(5):
        assert_problem(_login(api, cccd, "Wrong-pass-123"), 401, "invalid_credentials")
    assert_problem(_login(api, cccd, "Wrong-pass-123"), 429, "signin_locked")


@pytest.mark.parametrize("body", [
    {"method": "password", "cccd": "12", "password": "x"},
    {"method": "password", "cccd": "001090012345"},
    {"method": "password", "password": "x"},
    {"method": "sms", "cccd": "001090012345", "password": "x"},
    {"method": "password", "cccd": "001090012345", "password": "x" * 10_000},
    {"method": "password", "cccd": "00109\u00000012345", "password": "x"},
    {"method": "certificate"},
])
def test_hostile_login_bodies(api, body):
    reply = api("POST", "/api/v1/auth/login", body)
    assert reply.status == 422 and reply.code in ("validation_failed", "invalid_id_number"), reply


# -- tokens ---------------------------------------------------------------------------------------

def test_refresh_rotates_and_a_reused_token_ends_the_session(api, citizen, identity_db):
    first = citizen["refresh_token"]
    second = api("POST", "/api/v1/auth/refresh", {"refresh_token": first})
    assert second.status == 200 and second["refresh_token"] != first
    assert api("GET", "/api/v1/me", token=second["access_token"]).status == 200
    reused = api("POST", "/api/v1/auth/refresh", {"refresh_token": first})
    assert_problem(reused, 401, "refresh_token_revoked")
    # the whole session is gone, including the token the rotation handed out
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": second["refresh_token"]}),
                   401, "refresh_token_revoked")
    with identity_db.transaction() as cur:
        cur.execute("SELECT payload FROM events WHERE stream_id = %s AND event_type = 'SignedOut'",
                    (f"account-{citizen['account_id']}",))
        assert [r["payload"]["reason"] for r in cur.fetchall()] == ["refresh_reuse"]


def test_logout_revokes_the_refresh_token(api, citizen):
    reply = api("POST", "/api/v1/auth/logout", {"refresh_token": citizen["refresh_token"]},
                token=citizen["access_token"])
    assert reply.status == 204
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]}),
                   401, "refresh_token_revoked")


def test_logout_everywhere_and_someone_elses_token(api, gateway_url, citizen):
    other = accounts.register_citizen(gateway_url)
    # another account's refresh token is not revoked by my logout
    assert api("POST", "/api/v1/auth/logout", {"refresh_token": other["refresh_token"]},
               token=citizen["access_token"]).status == 204
    assert api("POST", "/api/v1/auth/refresh", {"refresh_token": other["refresh_token"]}).status == 200
    assert api("POST", "/api/v1/auth/logout", {"everywhere": True}, token=citizen["access_token"]).status == 204
    assert api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]}).status == 401
    assert_problem(api("POST", "/api/v1/auth/logout", {}), 401)


@pytest.mark.parametrize("token", ["", "x", "not.a.token", "6f1c1a1000004000800000000000000.abc", "a" * 199])
def test_bogus_refresh_tokens(api, token):
    reply = api("POST", "/api/v1/auth/refresh", {"refresh_token": token})
    assert reply.status in (401, 422) and reply.code in ("invalid_refresh_token", "validation_failed"), reply


def test_expired_refresh_token(api, citizen, identity_db):
    with identity_db.transaction() as cur:
        cur.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE account_id = %s",
                    (citizen["account_id"],))
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]}),
                   401, "refresh_token_expired")


def _current_key(identity_db) -> SigningKey:
    with identity_db.transaction() as cur:
        cur.execute("SELECT kid, private_pem FROM signing_keys WHERE activates_at <= now() "
                    "ORDER BY activates_at DESC, created_at DESC LIMIT 1")
        row = cur.fetchone()
    return SigningKey(row["kid"], serialization.load_pem_private_key(row["private_pem"].encode(), None))


def test_tampered_and_expired_access_tokens(api, citizen, identity_db):
    token = citizen["access_token"]
    head, body, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.utils.base64url_encode(json.dumps({**claims, "role": "operator"}).encode()).decode()
    for bad in (f"{head}.{forged}.{sig}", f"{head}.{body}.{sig[::-1]}", token + "x"):
        assert_problem(api("GET", "/api/v1/me", token=bad), 401, "invalid_token")
    none_alg = jwt.encode({**claims, "role": "operator"}, None, algorithm="none")
    assert_problem(api("GET", "/api/v1/me", token=none_alg), 401, "invalid_token")
    account = {"id": citizen["account_id"], "role": "citizen", "identifier": citizen["cccd"]}
    expired, _ = access_token(_current_key(identity_db), account, 60, now=time.time() - 3600)
    assert_problem(api("GET", "/api/v1/me", token=expired), 401, "token_expired")
    assert_problem(api("GET", "/api/v1/me"), 401, "unauthorized")


def test_key_rotation_publishes_first_and_keeps_earlier_tokens_valid(api, gateway_url, citizen, amqp_uri,
                                                                     identity_db):
    before = [k["kid"] for k in api("GET", "/.well-known/jwks.json")["keys"]]
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as cluster:
        kid = cluster.identity.rotate_signing_key()["kid"]
    after = api("GET", "/.well-known/jwks.json")["keys"]
    assert after[0]["kid"] == kid and before[0] in [k["kid"] for k in after]  # published before it signs
    assert all("d" not in k for k in after)
    still_old = accounts.sign_in(gateway_url, citizen["cccd"], citizen["password"], citizen["phone"])
    assert jwt.get_unverified_header(still_old["access_token"])["kid"] == before[0]
    with identity_db.transaction() as cur:  # let the activation delay pass
        cur.execute("UPDATE signing_keys SET activates_at = now() WHERE kid = %s", (kid,))
    time.sleep(11)  # identity reloads its key within 5 s; the gateway refetches at most every 10 s
    fresh = accounts.sign_in(gateway_url, citizen["cccd"], citizen["password"], citizen["phone"])
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == kid
    assert api("GET", "/api/v1/me", token=fresh["access_token"]).status == 200
    assert api("GET", "/api/v1/me", token=citizen["access_token"]).status == 200  # signed with the old key
    assert [k["kid"] for k in api("GET", "/.well-known/jwks.json")["keys"]] == [kid, before[0]]
