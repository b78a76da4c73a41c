"""Forgotten and changed passwords over HTTP: a code to the phone, no enumeration, the policy,
and every session ending."""

from __future__ import annotations

import pytest

from tests.identity.conftest import assert_problem
from tests.support import accounts

pytestmark = pytest.mark.integration
NEW = "Mat-khau-moi-2026"


@pytest.fixture
def citizen(gateway_url):
    return accounts.register_citizen(gateway_url)


def test_forgotten_password_reset_ends_every_session(api, gateway_url, citizen):
    started = api("POST", "/api/v1/auth/password/forgot", {"cccd": citizen["cccd"]})
    assert started.status == 202
    code = accounts.latest_code(gateway_url, citizen["phone"])
    weak = api("POST", "/api/v1/auth/password/reset", {"reset_id": started["reset_id"], "otp": code,
                                                        "new_password": "abcdefgh"})
    assert_problem(weak, 422, "weak_password")
    done = api("POST", "/api/v1/auth/password/reset", {"reset_id": started["reset_id"], "otp": code,
                                                        "new_password": NEW})
    assert done.status == 200 and int(done["sessions_ended"]) >= 1
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]}),
                   401, "refresh_token_revoked")
    assert_problem(api("POST", "/api/v1/auth/login", {"cccd": citizen["cccd"], "password": citizen["password"]}),
                   401, "invalid_credentials")
    tokens = accounts.sign_in(gateway_url, citizen["cccd"], NEW, citizen["phone"])
    assert tokens["account_id"] == citizen["account_id"]
    again = api("POST", "/api/v1/auth/password/reset", {"reset_id": started["reset_id"], "otp": code,
                                                         "new_password": NEW + "x"})
    assert_problem(again, 400, "otp_used")


def test_forgot_does_not_tell_who_is_registered(api, citizen):
    known = api("POST", "/api/v1/auth/password/forgot", {"cccd": citizen["cccd"]})
    unknown = api("POST", "/api/v1/auth/password/forgot", {"cccd": accounts.random_person()["cccd"]})
    assert known.status == unknown.status == 202
    assert set(known.body) == set(unknown.body) and known["message"] == unknown["message"]
    body = {"reset_id": unknown["reset_id"], "otp": "123456", "new_password": NEW}
    wrong = api("POST", "/api/v1/auth/password/reset", {**body, "reset_id": known["reset_id"]})
    assert_problem(api("POST", "/api/v1/auth/password/reset", body), 400, "otp_invalid")
    assert_problem(wrong, 400, "otp_invalid")


def test_a_reset_id_is_not_a_sign_in(api, gateway_url, citizen):
    started = api("POST", "/api/v1/auth/password/forgot", {"cccd": citizen["cccd"]})
    code = accounts.latest_code(gateway_url, citizen["phone"])
    reply = api("POST", "/api/v1/auth/login/confirm", {"login_id": started["reset_id"], "otp": code})
    assert_problem(reply, 404, "login_not_found")


def test_change_password(api, gateway_url, citizen):
    token = citizen["access_token"]
    wrong = api("POST", "/api/v1/me/password", {"current_password": "Not-the-one-1", "new_password": NEW},
                token=token)
    assert_problem(wrong, 401, "invalid_credentials")
    weak = api("POST", "/api/v1/me/password", {"current_password": citizen["password"],
                                                "new_password": citizen["cccd"] + "Aa!"}, token=token)
    assert_problem(weak, 422, "weak_password")
    done = api("POST", "/api/v1/me/password", {"current_password": citizen["password"], "new_password": NEW},
               token=token)
    assert done.status == 200 and done["status"] == "password_changed"
    assert api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]}).status == 401
    assert accounts.sign_in(gateway_url, citizen["cccd"], NEW, citizen["phone"])["account_id"] == \
        citizen["account_id"]
    assert_problem(api("POST", "/api/v1/me/password", {"current_password": "x", "new_password": NEW}), 401)
    staff = accounts.staff_token(gateway_url, "editor")
    assert_problem(api("POST", "/api/v1/me/password", {"current_password": "x", "new_password": NEW},
                       token=staff), 422, "no_password")


@pytest.mark.parametrize("body", [{}, {"cccd": "x" * 50}, {"cccd": "a\u0000"}, {"cccd": 12}])
def test_hostile_forgot_bodies(api, body):
    assert_problem(api("POST", "/api/v1/auth/password/forgot", body), 422, "validation_failed")
