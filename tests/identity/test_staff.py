"""Real staff credentials over HTTP: an operator creates an officer who activates the account
by SMS code and signs in with username + password + code; agency systems get client
credentials scoped to their agency, which revocation stops; an operator disables a staff account
(shut out at once) and reinstates it."""

from __future__ import annotations

import subprocess
import sys
import time
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


def test_the_admin_command_disables_and_reinstates_staff(migrated_database, identity_db):
    username = f"off.{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": migrated_database, "PATH": "/usr/bin:/bin"}

    def admin(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.identity.admin", *args],
                              capture_output=True, text=True, env=env, timeout=60)

    assert admin("create-staff", "--username", username, "--role", "officer", "--full-name", "Cán bộ",
                 "--phone", "0987654322", "--agency-code", "P51-STP").returncode == 0
    done = admin("disable-staff", "--username", username, "--reason", "left the agency")
    assert done.returncode == 0 and f"{username} is now disabled" in done.stdout, done.stderr
    again = admin("disable-staff", "--username", username, "--reason", "twice")
    assert again.returncode == 1 and "staff_already_disabled" in again.stderr
    unknown = admin("disable-staff", "--username", f"nobody.{uuid.uuid4().hex[:6]}", "--reason", "x")
    assert unknown.returncode == 1 and "staff_not_found" in unknown.stderr
    back = admin("reinstate-staff", "--username", username, "--reason", "came back")
    assert back.returncode == 0 and f"{username} is now pending" in back.stdout  # never activated
    with identity_db.transaction() as cur:
        cur.execute("SELECT id, status FROM accounts WHERE identifier = %s", (f"staff:{username}",))
        account = cur.fetchone()
        cur.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                    (f"account-{account['id']}",))
        events = cur.fetchall()
    assert account["status"] == "pending"
    assert [e["event_type"] for e in events] == ["StaffAccountCreated", "StaffAccountDisabled",
                                                  "StaffAccountReinstated"]
    assert events[1]["payload"]["reason"] == "left the agency" and events[1]["payload"]["username"] == username


def _activate(api, gateway_url, username, phone):
    code = accounts.latest_code(gateway_url, phone)
    return api("POST", "/api/v1/auth/staff/activate", {"username": username, "otp": code, "password": PASSWORD})


def _staff_sign_in(api, gateway_url, username, phone):
    step = api("POST", "/api/v1/auth/staff/login", {"username": username, "password": PASSWORD})
    if step.status != 200:
        return step
    return api("POST", "/api/v1/auth/login/confirm",
               {"login_id": step["login_id"], "otp": accounts.latest_code(gateway_url, phone)})


def _active_officer(api, gateway_url, operator):
    username, phone, created = _new_officer(api, operator)
    assert _activate(api, gateway_url, username, phone).status == 200
    tokens = _staff_sign_in(api, gateway_url, username, phone)
    assert tokens.status == 200, tokens
    return username, phone, created["account_id"], tokens


def _events(identity_db, account_id):
    with identity_db.transaction() as cur:
        cur.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                    (f"account-{account_id}",))
        return cur.fetchall()


def test_a_disabled_officer_is_shut_out_at_once_and_a_reinstated_one_signs_in(api, gateway_url, operator,
                                                                                identity_db):
    username, phone, account_id, tokens = _active_officer(api, gateway_url, operator)
    assert api("GET", "/api/v1/me", token=tokens["access_token"]).status == 200
    done = api("POST", f"/api/v1/staff/{account_id}/disable", {"reason": "Nghỉ việc"}, token=operator)
    assert done.status == 200 and done["status"] == "disabled" and done["sessions_ended"] == 1, done
    # the gateway learns it from the event: within a moment, without asking identity
    reply = api("GET", "/api/v1/me", token=tokens["access_token"])
    for _ in range(50):
        if reply.status != 200:
            break
        time.sleep(0.1)
        reply = api("GET", "/api/v1/me", token=tokens["access_token"])
    assert_problem(reply, 401, "token_revoked")
    assert_problem(api("POST", "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}), 401)
    # a disabled account's sign-in reads exactly like a wrong password
    assert_problem(api("POST", "/api/v1/auth/staff/login", {"username": username, "password": PASSWORD}),
                   401, "invalid_credentials")
    assert_problem(api("POST", f"/api/v1/staff/{account_id}/disable", {"reason": "again"}, token=operator),
                   409, "staff_already_disabled")
    back = api("POST", f"/api/v1/staff/{account_id}/reinstate", {"reason": "Trở lại làm việc"}, token=operator)
    assert back.status == 200 and back["status"] == "active", back
    assert_problem(api("POST", f"/api/v1/staff/{account_id}/reinstate", {"reason": "again"}, token=operator),
                   409, "staff_not_disabled")
    fresh = _staff_sign_in(api, gateway_url, username, phone)
    assert fresh.status == 200, fresh
    assert api("GET", "/api/v1/me", token=fresh["access_token"]).status == 200
    assert_problem(api("GET", "/api/v1/me", token=tokens["access_token"]), 401, "token_revoked")
    events = _events(identity_db, account_id)
    kinds = [e["event_type"] for e in events]
    at = kinds.index("StaffAccountDisabled")
    assert kinds[at + 1] == "SignedOut" and "StaffAccountReinstated" in kinds[at:]
    assert events[at]["payload"] == {"account_id": account_id, "username": username, "role": "officer",
                                     "agency_code": "P51-STP", "reason": "Nghỉ việc"}
    sid = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    assert events[at + 1]["payload"] == {"account_id": account_id, "reason": "account_disabled",
                                         "session_ids": [sid], "all_sessions": True}
    reinstated = events[kinds.index("StaffAccountReinstated")]["payload"]
    assert reinstated["reason"] == "Trở lại làm việc" and reinstated["username"] == username
    listed = api("GET", "/api/v1/staff?agency_code=P51-STP&status=active&page_size=100", token=operator)
    assert listed.status == 200 and account_id in {i["account_id"] for i in listed["items"]}, listed
    assert all(i["status"] == "active" and i["agency_code"] == "P51-STP" for i in listed["items"])


def test_only_operators_disable_staff(api, gateway_url, operator):
    _, _, account_id, tokens = _active_officer(api, gateway_url, operator)
    editor = accounts.staff_token(gateway_url, "editor")
    for token in (editor, tokens["access_token"]):
        for action in ("disable", "reinstate"):
            assert_problem(api("POST", f"/api/v1/staff/{account_id}/{action}", {"reason": "x"}, token=token),
                           403, "forbidden")
    assert_problem(api("POST", f"/api/v1/staff/{account_id}/disable", {"reason": "x"}), 401)
    assert_problem(api("GET", "/api/v1/staff", token=editor), 403, "forbidden")
    assert api("GET", "/api/v1/me", token=tokens["access_token"]).status == 200


@pytest.mark.parametrize("account_id", ["not-a-uuid", str(uuid.uuid4()), "%20", "0" * 300])
def test_an_unknown_staff_id_is_not_found(api, operator, account_id):
    assert_problem(api("POST", f"/api/v1/staff/{account_id}/disable", {"reason": "x"}, token=operator),
                   404, "staff_not_found")
    assert_problem(api("POST", f"/api/v1/staff/{account_id}/reinstate", {"reason": "x"}, token=operator),
                   404, "staff_not_found")


def test_citizens_and_agency_systems_are_not_staff_here(api, gateway_url, operator):
    citizen = accounts.register_citizen(gateway_url)
    system = api("POST", "/api/v1/agency-systems", {"agency_code": "P51-STP", "name": "Hệ thống"}, token=operator)
    for account_id in (citizen["account_id"], system["account_id"]):
        assert_problem(api("POST", f"/api/v1/staff/{account_id}/disable", {"reason": "x"}, token=operator),
                       404, "staff_not_found")
    assert api("GET", "/api/v1/me", token=citizen["access_token"]).status == 200


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501},
                                  {"reason": "a\u0000b"}, {"reason": "ok", "extra": 1}, {"reason": 5}])
def test_a_reason_is_required(api, gateway_url, operator, body):
    _, _, created = _new_officer(api, operator)
    reply = api("POST", f"/api/v1/staff/{created['account_id']}/disable", body, token=operator)
    assert_problem(reply, 422, "validation_failed")


def test_an_operator_cannot_disable_themselves(api, operator):
    me = jwt.decode(operator, options={"verify_signature": False})["sub"]
    assert_problem(api("POST", f"/api/v1/staff/{me}/disable", {"reason": "oops"}, token=operator),
                   409, "cannot_disable_self")
    assert api("GET", "/api/v1/me", token=operator).status == 200


def test_a_disabled_pending_account_cannot_be_activated(api, gateway_url, operator, identity_db):
    username, phone, created = _new_officer(api, operator)
    done = api("POST", f"/api/v1/staff/{created['account_id']}/disable", {"reason": "Tạo nhầm"}, token=operator)
    assert done.status == 200 and done["sessions_ended"] == 0
    assert_problem(_activate(api, gateway_url, username, phone), 404, "activation_not_found")
    assert [e["event_type"] for e in _events(identity_db, created["account_id"])] == [
        "StaffAccountCreated", "StaffAccountDisabled"]  # no session ended: no SignedOut
    back = api("POST", f"/api/v1/staff/{created['account_id']}/reinstate", {"reason": "Đúng người"}, token=operator)
    assert back.status == 200 and back["status"] == "pending"  # it still waits for its activation
    assert _activate(api, gateway_url, username, phone).status == 200
