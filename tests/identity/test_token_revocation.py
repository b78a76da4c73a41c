"""Revoked access tokens over HTTP against the running system: the gateway verifies tokens on
its own, and still refuses (401 ``token_revoked``) those of a session or account identity has
ended (a sign-out, a password change, a revoked agency system, a disabled staff account), within
about a second, while the account's other sessions go on; a gateway started after the
revocation refuses them too (it reads identity's current revocations)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import jwt
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.identity.conftest import assert_problem, http
from tests.support import accounts
from tests.support.processes import stop

pytestmark = pytest.mark.integration
NEW = "Mat-khau-moi-2026"
STAFF_PASSWORD = "Can-bo-mot-cua-7"
BOUND_S = 5.0  # the refusal comes in about a second; the tests only wait this long at most


@pytest.fixture
def citizen(gateway_url):
    return accounts.register_citizen(gateway_url)


def _second_session(gateway_url, citizen) -> dict:
    return accounts.sign_in(gateway_url, citizen["cccd"], citizen["password"], citizen["phone"])


def _me(base_url: str, token: str):
    return http(base_url + "/api/v1/me", "GET", token=token)


def _until_revoked(base_url: str, token: str):
    deadline = time.monotonic() + BOUND_S
    reply = _me(base_url, token)
    while reply.status == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        reply = _me(base_url, token)
    return reply


def test_tokens_name_their_session(gateway_url, citizen):
    other = _second_session(gateway_url, citizen)
    sid = jwt.decode(citizen["access_token"], options={"verify_signature": False})["sid"]
    assert sid and sid != jwt.decode(other["access_token"], options={"verify_signature": False})["sid"]
    refreshed = http(gateway_url + "/api/v1/auth/refresh", "POST", {"refresh_token": citizen["refresh_token"]})
    assert jwt.decode(refreshed["access_token"], options={"verify_signature": False})["sid"] == sid


def test_sign_out_kills_that_sessions_token_and_spares_the_others(api, gateway_url, citizen):
    other = _second_session(gateway_url, citizen)
    refreshed = api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]})
    assert refreshed.status == 200
    assert api("POST", "/api/v1/auth/logout", {"refresh_token": refreshed["refresh_token"]},
               token=refreshed["access_token"]).status == 204
    for token in (refreshed["access_token"], citizen["access_token"]):  # the session's tokens, old and new
        assert_problem(_until_revoked(gateway_url, token), 401, "token_revoked")
    assert _me(gateway_url, other["access_token"]).status == 200
    assert api("POST", "/api/v1/auth/refresh", {"refresh_token": other["refresh_token"]}).status == 200


def test_sign_out_with_the_access_token_alone_ends_its_session(api, gateway_url, citizen):
    other = _second_session(gateway_url, citizen)
    assert api("POST", "/api/v1/auth/logout", {}, token=citizen["access_token"]).status == 204
    assert_problem(_until_revoked(gateway_url, citizen["access_token"]), 401, "token_revoked")
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": citizen["refresh_token"]}),
                   401, "refresh_token_revoked")
    assert _me(gateway_url, other["access_token"]).status == 200


def test_sign_out_everywhere_kills_every_token_of_the_account(api, gateway_url, citizen):
    other = _second_session(gateway_url, citizen)
    bystander = accounts.register_citizen(gateway_url)
    assert api("POST", "/api/v1/auth/logout", {"everywhere": True}, token=other["access_token"]).status == 204
    for token in (citizen["access_token"], other["access_token"]):
        assert_problem(_until_revoked(gateway_url, token), 401, "token_revoked")
    assert _me(gateway_url, bystander["access_token"]).status == 200
    fresh = _second_session(gateway_url, citizen)  # signing in again works at once
    assert _me(gateway_url, fresh["access_token"]).status == 200


def test_a_password_change_kills_every_token_of_the_account(api, gateway_url, citizen):
    other = _second_session(gateway_url, citizen)
    done = api("POST", "/api/v1/me/password", {"current_password": citizen["password"], "new_password": NEW},
               token=citizen["access_token"])
    assert done.status == 200 and int(done["sessions_ended"]) >= 2
    for token in (citizen["access_token"], other["access_token"]):
        assert_problem(_until_revoked(gateway_url, token), 401, "token_revoked")
    fresh = accounts.sign_in(gateway_url, citizen["cccd"], NEW, citizen["phone"])
    assert _me(gateway_url, fresh["access_token"]).status == 200


def test_a_revoked_agency_systems_token_is_refused(api, gateway_url):
    operator = accounts.staff_token(gateway_url, "operator")
    created = api("POST", "/api/v1/agency-systems", {"agency_code": "P51-STP", "name": "Hệ thống thu hồi"},
                  token=operator)
    token = api("POST", "/api/v1/auth/token", {"client_id": created["client_id"],
                                                "client_secret": created["client_secret"]})["access_token"]
    assert _me(gateway_url, token).status == 200
    assert api("DELETE", f"/api/v1/agency-systems/{created['client_id']}", token=operator).status == 200
    assert_problem(_until_revoked(gateway_url, token), 401, "token_revoked")
    assert _me(gateway_url, operator).status == 200


def test_identity_lists_the_recent_revocations(api, gateway_url, amqp_uri, citizen):
    other = _second_session(gateway_url, citizen)
    sid = jwt.decode(citizen["access_token"], options={"verify_signature": False})["sid"]
    kept = jwt.decode(other["access_token"], options={"verify_signature": False})["sid"]
    assert api("POST", "/api/v1/auth/logout", {"refresh_token": citizen["refresh_token"]},
               token=citizen["access_token"]).status == 204
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as cluster:
        listed = cluster.identity.revocations()
    sessions = {s["session_id"]: s for s in listed["sessions"]}
    assert listed["ttl"] > 0 and sid in sessions and kept not in sessions
    assert sessions[sid]["account_id"] == citizen["account_id"]
    assert abs(sessions[sid]["revoked_at"] - time.time()) < 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _second_gateway(system):
    """Another gateway process, started now: it knows only what identity's revocations() tells it."""
    port = _free_port()
    env = {**system.env("gateway"), "GATEWAY_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config", "gateway/config.yml",
                             "gateway.service:GatewayService"], cwd=system_root(), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the second gateway exited"
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        stop(proc, group=True)


def test_a_gateway_started_after_the_sign_out_refuses_the_token(api, system, gateway_url, citizen):
    other = _second_session(gateway_url, citizen)
    assert api("POST", "/api/v1/auth/logout", {"refresh_token": citizen["refresh_token"]},
               token=citizen["access_token"]).status == 204
    with _second_gateway(system) as url:
        # the event went by before this gateway existed: only its start-up read can know
        assert_problem(_me(url, citizen["access_token"]), 401, "token_revoked")
        assert _me(url, other["access_token"]).status == 200


def _signed_in_officer(api, gateway_url, operator) -> dict:
    """A real officer account, created by an operator, activated, and signed in."""
    username, phone = f"cb.{uuid.uuid4().hex[:8]}", accounts.random_person()["phone"]
    created = api("POST", "/api/v1/staff", {"username": username, "role": "officer", "agency_code": "P51-STP",
                                            "full_name": "Trần Thị Cán Bộ", "phone": phone}, token=operator)
    body = {"username": username, "otp": accounts.latest_code(gateway_url, phone), "password": STAFF_PASSWORD}
    assert api("POST", "/api/v1/auth/staff/activate", body).status == 200
    step = api("POST", "/api/v1/auth/staff/login", {"username": username, "password": STAFF_PASSWORD})
    tokens = api("POST", "/api/v1/auth/login/confirm",
                 {"login_id": step["login_id"], "otp": accounts.latest_code(gateway_url, phone)})
    return {"account_id": created["account_id"], "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"]}


def test_a_disabled_staff_accounts_tokens_are_refused_here_and_by_a_later_gateway(api, system, gateway_url,
                                                                                   amqp_uri):
    operator = accounts.staff_token(gateway_url, "operator")
    officer = _signed_in_officer(api, gateway_url, operator)
    bystander = _signed_in_officer(api, gateway_url, operator)
    assert _me(gateway_url, officer["access_token"]).status == 200
    done = api("POST", f"/api/v1/staff/{officer['account_id']}/disable", {"reason": "Lộ mật khẩu"}, token=operator)
    assert done.status == 200, done
    assert_problem(_until_revoked(gateway_url, officer["access_token"]), 401, "token_revoked")
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": officer["refresh_token"]}), 401)
    assert _me(gateway_url, bystander["access_token"]).status == 200
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as cluster:
        listed = cluster.identity.revocations()
    cutoff = {a["account_id"]: a["before"] for a in listed["accounts"]}
    assert abs(cutoff[officer["account_id"]] - time.time()) < 60 and bystander["account_id"] not in cutoff
    with _second_gateway(system) as url:
        assert_problem(_me(url, officer["access_token"]), 401, "token_revoked")
        assert _me(url, bystander["access_token"]).status == 200


def system_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
