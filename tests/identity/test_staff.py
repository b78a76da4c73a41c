"""Real staff credentials over HTTP: an operator creates an officer who activates the account
by SMS code and signs in with username + password + code; agency systems get client
credentials scoped to their agency, which revocation stops."""

from __future__ import annotations

import subprocess
import sys
import uuid

import jwt
import pytest

from tests.identity.conftest import assert_problem
from tests.support import accounts

pytestmark = pytest.mark.integration
PASSWORD = "Can-bo-mot-cua-7"


@pytest.fixture(scope="module")
def operator(gateway_url):
    return accounts.staff_token(gateway_url, "operator")


def _new_officer(api, operator, agency="P51-STP", role="officer"):
    username = f"cb.{uuid.uuid4().hex[:8]}"
    phone = accounts.random_person()["phone"]
    body = {"username": username, "role": role, "full_name": "Phạm Văn Cán Bộ", "phone": phone,
            "agency_code": agency if role == "officer" else None}
    created = api("POST", "/api/v1/staff", body, token=operator)
    assert created.status == 201 and created["status"] == "pending", created
    return username, phone, created


def test_officer_is_created_activates_and_signs_in(api, gateway_url, operator):
    username, phone, created = _new_officer(api, operator)
    # before activation: no sign-in, and the answer says nothing more than for a stranger
    assert_problem(api("POST", "/api/v1/auth/staff/login", {"username": username, "password": PASSWORD}),
                   401, "invalid_credentials")
    code = accounts.latest_code(gateway_url, phone)
    weak = api("POST", "/api/v1/auth/staff/activate", {"username": username, "otp": code, "password": "abc"})
    assert_problem(weak, 422, "weak_password")
    done = api("POST", "/api/v1/auth/staff/activate", {"username": username, "otp": code, "password": PASSWORD})
    assert done.status == 200 and done["status"] == "active", done
    step = api("POST", "/api/v1/auth/staff/login", {"username": username, "password": PASSWORD})
    assert step.status == 200, step
    tokens = api("POST", "/api/v1/auth/login/confirm",
                 {"login_id": step["login_id"], "otp": accounts.latest_code(gateway_url, phone)})
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["role"] == "officer" and claims["agency"] == "P51-STP" and claims["sub"] == created["account_id"]
    me = api("GET", "/api/v1/me", token=tokens["access_token"])
    assert me["agency_code"] == "P51-STP" and me["role"] == "officer"
    # staff usernames do not open the citizens' door, nor the reverse
    assert_problem(api("POST", "/api/v1/auth/login", {"cccd": username, "password": PASSWORD}), 422)


def test_only_operators_create_staff_and_usernames_are_unique(api, gateway_url, operator):
    editor = accounts.staff_token(gateway_url, "editor")
    body = {"username": "someone", "role": "editor", "full_name": "A", "phone": "0912345678"}
    assert_problem(api("POST", "/api/v1/staff", body, token=editor), 403, "forbidden")
    assert_problem(api("POST", "/api/v1/staff", body), 401)
    username, phone, _ = _new_officer(api, operator, role="editor")
    again = {"username": username, "role": "editor", "full_name": "B", "phone": phone}
    assert_problem(api("POST", "/api/v1/staff", again, token=operator), 409, "username_taken")


@pytest.mark.parametrize("body", [
    {"username": "x", "role": "editor", "full_name": "A", "phone": "0912345678"},
    {"username": "ok.name", "role": "citizen", "full_name": "A", "phone": "0912345678"},
    {"username": "ok.name", "role": "officer", "full_name": "A", "phone": "0912345678"},
    {"username": "ok.name", "role": "editor", "full_name": "A", "phone": "0912345678", "agency_code": "X"},
    {"username": "ok.name", "role": "editor", "full_name": "A\u0000", "phone": "0912345678"},
    {"username": "ok.name", "role": "editor", "full_name": "A", "phone": "12"},
])
def test_hostile_staff_bodies(api, operator, body):
    reply = api("POST", "/api/v1/staff", body, token=operator)
    assert reply.status == 422 and reply.code in ("validation_failed", "invalid_phone"), reply


def test_wrong_activation_code(api, gateway_url, operator):
    username, phone, _ = _new_officer(api, operator)
    good = accounts.latest_code(gateway_url, phone)
    wrong = api("POST", "/api/v1/auth/staff/activate",
                {"username": username, "otp": f"{(int(good) + 1) % 10**6:06d}", "password": PASSWORD})
    assert_problem(wrong, 400, "otp_invalid")
    assert_problem(api("POST", "/api/v1/auth/staff/activate",
                       {"username": "nobody.here", "otp": good, "password": PASSWORD}), 404, "activation_not_found")


def test_a_staff_activation_is_not_a_citizen_registration(api, gateway_url, operator, identity_db):
    username, phone, _ = _new_officer(api, operator)
    with identity_db.transaction() as cur:
        cur.execute("SELECT id FROM registrations WHERE identifier = %s", (f"staff:{username}",))
        reg_id = str(cur.fetchone()["id"])
    reply = api("POST", "/api/v1/auth/register/mobile/confirm",
                {"registration_id": reg_id, "otp": accounts.latest_code(gateway_url, phone)})
    assert_problem(reply, 404, "registration_not_found")


def test_agency_system_credentials(api, operator):
    created = api("POST", "/api/v1/agency-systems", {"agency_code": "P51-STP", "name": "Một cửa Sở Tư pháp"},
                  token=operator)
    assert created.status == 201 and created["client_secret"] and created["client_id"].startswith("as_")
    creds = {"grant_type": "client_credentials", "client_id": created["client_id"],
             "client_secret": created["client_secret"]}
    token = api("POST", "/api/v1/auth/token", creds)
    assert token.status == 200 and "refresh_token" not in token.body
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["role"] == "agency_system" and claims["agency"] == "P51-STP"
    assert api("GET", "/api/v1/me", token=token["access_token"])["agency_code"] == "P51-STP"
    assert_problem(api("POST", "/api/v1/auth/token", {**creds, "client_secret": "nope"}), 401, "invalid_client")
    assert_problem(api("POST", "/api/v1/auth/token", {**creds, "client_id": "as_unknown"}), 401, "invalid_client")
    assert_problem(api("POST", "/api/v1/auth/token", {**creds, "grant_type": "password"}), 422)
    assert api("DELETE", f"/api/v1/agency-systems/{created['client_id']}", token=operator).status == 200
    assert_problem(api("POST", "/api/v1/auth/token", creds), 401, "invalid_client")
    assert_problem(api("DELETE", f"/api/v1/agency-systems/{created['client_id']}", token=operator), 404)


def test_the_admin_command_bootstraps_an_operator(migrated_database, identity_db):
    username = f"op.{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": migrated_database, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "services.identity.admin", "create-staff", "--username", username,
                           "--role", "operator", "--full-name", "Quản trị viên", "--phone", "0987654321"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "09******21" in done.stdout and username in done.stdout
    with identity_db.transaction() as cur:
        cur.execute("SELECT role, status FROM accounts WHERE identifier = %s", (f"staff:{username}",))
        assert cur.fetchone() == {"role": "operator", "status": "pending"}
