"""Registration over HTTP against the running system: mobile subscription and BHXH, every
refusal the issue lists, and hostile input."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.identity.conftest import assert_problem
from tests.support import accounts

pytestmark = pytest.mark.integration


def _start(api, person: dict, carrier_cccd: str | None = "same"):
    if carrier_cccd is not None:
        owner = person["cccd"] if carrier_cccd == "same" else carrier_cccd
        assert api("POST", "/api/v1/dev/carrier-records", {"phone": person["phone"], "cccd": owner}).status == 201
    return api("POST", "/api/v1/auth/register/mobile", person)


def _code(gateway_url, phone):
    return accounts.latest_code(gateway_url, phone)


def test_mobile_registration_creates_the_account_and_its_events(api, gateway_url, identity_db):
    person = accounts.random_person()
    person["old_id_number"] = "1" + person["cccd"][-8:]
    started = _start(api, person)
    assert started.status == 202 and started["otp_sent_to"].startswith(person["phone"][:2])
    assert person["phone"] not in json.dumps(started.body)
    done = api("POST", "/api/v1/auth/register/mobile/confirm",
               {"registration_id": started["registration_id"], "otp": _code(gateway_url, person["phone"])})
    assert done.status == 201 and done["role"] == "citizen"
    with identity_db.transaction() as cur:
        cur.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                    (f"account-{done['account_id']}",))
        events = cur.fetchall()
        cur.execute("SELECT password_hash, legacy_id FROM accounts WHERE id = %s", (done["account_id"],))
        account = cur.fetchone()
    assert [e["event_type"] for e in events] == ["CitizenRegistered", "AccountVerified", "AccountVerified"]
    assert events[0]["payload"]["cccd"] == person["cccd"] and events[0]["payload"]["method"] == "mobile"
    assert account["password_hash"].startswith("$argon2id$") and account["legacy_id"] == person["old_id_number"]
    # the old CMT signs in too
    tokens = accounts.sign_in(gateway_url, person["old_id_number"], person["password"], person["phone"])
    assert tokens["account_id"] == done["account_id"]


def test_registering_the_same_cccd_twice_is_refused_after_the_code(api, gateway_url):
    person = accounts.random_person()
    first = _start(api, person)
    api("POST", "/api/v1/auth/register/mobile/confirm",
        {"registration_id": first["registration_id"], "otp": _code(gateway_url, person["phone"])})
    again = _start(api, person, carrier_cccd=None)
    assert again.status == 202  # nothing said before the number is proven
    reply = api("POST", "/api/v1/auth/register/mobile/confirm",
                {"registration_id": again["registration_id"], "otp": _code(gateway_url, person["phone"])})
    assert_problem(reply, 409, "account_exists")


@pytest.mark.parametrize(("change", "code"), [
    ({"cccd": "00109001234"}, "invalid_cccd"),
    ({"cccd": "003090012345"}, "invalid_cccd"),
    ({"cccd": "001090012345", "date_of_birth": "1991-02-03", "gender": "male"}, "cccd_mismatch"),
    ({"cccd": "001090012345", "date_of_birth": "1990-02-03", "gender": "female"}, "cccd_mismatch"),
    ({"phone": "0212345678"}, "invalid_phone"),
    ({"password": "qqqqqqqq7"}, "weak_password"),
    ({"old_id_number": "12345"}, "invalid_cmt"),
])
def test_structure_refusals(api, change, code):
    person = {**accounts.random_person(), **change}
    reply = api("POST", "/api/v1/auth/register/mobile", person)
    assert_problem(reply, 422, code)
    assert person["password"] not in json.dumps(reply.body)


def test_phone_registered_to_someone_else(api):
    person = accounts.random_person()
    someone = accounts.random_person()["cccd"]
    reply = _start(api, person, carrier_cccd=someone)
    assert_problem(reply, 422, "phone_not_owned")
    assert "chính chủ" in reply.body["detail"]


def test_phone_unknown_to_the_carrier(api):
    reply = api("POST", "/api/v1/auth/register/mobile", accounts.random_person())
    assert_problem(reply, 422, "phone_unknown_to_carrier")


def test_wrong_code_counts_attempts_then_exhausts(api, gateway_url):
    person = accounts.random_person()
    started = _start(api, person)
    good = _code(gateway_url, person["phone"])
    wrong = f"{(int(good) + 1) % 10**6:06d}"
    lefts = []
    for _ in range(5):
        reply = api("POST", "/api/v1/auth/register/mobile/confirm",
                    {"registration_id": started["registration_id"], "otp": wrong})
        assert_problem(reply, 400, "otp_invalid")
        lefts.append(int(reply.body["attempts_left"]))
    assert lefts == [4, 3, 2, 1, 0]
    reply = api("POST", "/api/v1/auth/register/mobile/confirm",
                {"registration_id": started["registration_id"], "otp": good})
    assert_problem(reply, 400, "otp_exhausted")


def test_expired_code(api, gateway_url, identity_db):
    person = accounts.random_person()
    started = _start(api, person)
    with identity_db.transaction() as cur:
        cur.execute("UPDATE registrations SET otp_expires_at = now() - interval '1 second' WHERE id = %s",
                    (started["registration_id"],))
    reply = api("POST", "/api/v1/auth/register/mobile/confirm",
                {"registration_id": started["registration_id"], "otp": _code(gateway_url, person["phone"])})
    assert_problem(reply, 400, "otp_expired")


def test_a_used_code_cannot_confirm_again(api, gateway_url):
    person = accounts.random_person()
    started = _start(api, person)
    body = {"registration_id": started["registration_id"], "otp": _code(gateway_url, person["phone"])}
    assert api("POST", "/api/v1/auth/register/mobile/confirm", body).status == 201
    assert_problem(api("POST", "/api/v1/auth/register/mobile/confirm", body), 400, "otp_used")


def test_unknown_registration(api):
    reply = api("POST", "/api/v1/auth/register/mobile/confirm",
                {"registration_id": "6f1c1a10-0000-4000-8000-000000000001", "otp": "123456"})
    assert_problem(reply, 404, "registration_not_found")


# -- BHXH -----------------------------------------------------------------------------------

def _bhxh_person(api, **record_changes):
    person = accounts.random_person()
    code = person["phone"][-10:]
    record = {"bhxh_code": code, "cccd": person["cccd"], "full_name": person["full_name"],
              "date_of_birth": person["date_of_birth"], **record_changes}
    assert api("POST", "/api/v1/dev/bhxh-records", record).status == 201
    return {**person, "bhxh_code": code}


def test_bhxh_registration(api, gateway_url, identity_db):
    person = _bhxh_person(api)
    person["full_name"] = "  nguyễn   văn THỬ "  # the same name, written loosely
    started = api("POST", "/api/v1/auth/register/bhxh", person)
    assert started.status == 202, started
    done = api("POST", "/api/v1/auth/register/bhxh/confirm",
               {"registration_id": started["registration_id"], "otp": _code(gateway_url, person["phone"])})
    assert done.status == 201 and done["method"] == "bhxh"
    tokens = accounts.sign_in(gateway_url, person["cccd"], person["password"], person["phone"])
    me = api("GET", "/api/v1/me", token=tokens["access_token"])
    assert me["bhxh_code"] == person["bhxh_code"] and "bhxh" in me["methods"]


@pytest.mark.parametrize("change", [{"full_name": "Trần Thị Khác"}, {"date_of_birth": "1949-01-01"},
                                    {"cccd": "079195000001"}])
def test_bhxh_registry_names_another_person(api, change):
    person = _bhxh_person(api, **change)
    assert_problem(api("POST", "/api/v1/auth/register/bhxh", person), 422, "bhxh_mismatch")


def test_bhxh_code_unknown_or_malformed(api):
    person = {**accounts.random_person(), "bhxh_code": "0000000000"}
    assert_problem(api("POST", "/api/v1/auth/register/bhxh", person), 422, "bhxh_unknown")
    person["bhxh_code"] = "12ab"
    assert_problem(api("POST", "/api/v1/auth/register/bhxh", person), 422, "invalid_bhxh_code")


# -- hostile input ---------------------------------------------------------------------------

HOSTILE = [
    {},
    {"cccd": 1234},
    {"cccd": ["001090012345"]},
    {"full_name": "x" * 10_000},
    {"full_name": "A\u0000B"},
    {"full_name": "A\nB"},
    {"date_of_birth": "yesterday"},
    {"date_of_birth": "1800-01-01"},
    {"date_of_birth": (dt.date.today() + dt.timedelta(days=3)).isoformat()},
    {"gender": "x"},
    {"password": "p" * 100_000},
    {"unexpected": True},
]


@pytest.mark.parametrize("change", HOSTILE)
def test_hostile_registration_bodies(api, change):
    body = {**accounts.random_person(), **change} if change else {}
    reply = api("POST", "/api/v1/auth/register/mobile", body)
    assert_problem(reply, 422, "validation_failed")
    assert reply.body["errors"] and "Traceback" not in json.dumps(reply.body)


@pytest.mark.parametrize(("raw", "ctype", "status", "code"), [
    (b"not json", "application/json", 400, "invalid_json"), (b"[1, 2]", "application/json", 422, "validation_failed"),
    (b"cccd=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b"\xff\xfe", "application/json", 400, "invalid_json"),
])
def test_malformed_bodies(api, raw, ctype, status, code):
    reply = api("POST", "/api/v1/auth/register/mobile", raw=raw, content_type=ctype)
    assert (reply.status, reply.code) == (status, code), reply


@pytest.mark.parametrize("body", [{"registration_id": "nope", "otp": "123456"},
                                  {"registration_id": "6f1c1a10-0000-4000-8000-000000000001", "otp": "12a456"},
                                  {"registration_id": "6f1c1a10-0000-4000-8000-000000000001"}])
def test_hostile_confirmations(api, body):
    assert_problem(api("POST", "/api/v1/auth/register/mobile/confirm", body), 422, "validation_failed")


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/dev/carrier-records", {"phone": "x", "cccd": "001090012345"}),
    ("/api/v1/dev/carrier-records", {"phone": "0912345678", "cccd": "1"}),
    ("/api/v1/dev/bhxh-records", {"bhxh_code": "1", "cccd": "001090012345", "full_name": "A",
                                  "date_of_birth": "1990-01-01"}),
    ("/api/v1/dev/tokens", {"role": "god"}),
    ("/api/v1/dev/tokens", {"role": "editor", "agency_code": "P51-STP"}),
    ("/api/v1/dev/tokens", {"role": "officer", "agency_code": "bad code!"}),
    ("/api/v1/dev/trusted-cas", {"certificate_pem": "nope"}),
])
def test_hostile_dev_calls(api, path, body):
    reply = api("POST", path, body)
    assert 400 <= reply.status < 500 and reply.code, reply


def test_resending_a_code_replaces_the_old_one(api, gateway_url):
    person = accounts.random_person()
    started = _start(api, person)
    old = _code(gateway_url, person["phone"])
    resent = api("POST", "/api/v1/auth/otp/resend", {"registration_id": started["registration_id"]})
    assert resent.status == 200 and resent["expires_in"] > 0
    new = _code(gateway_url, person["phone"])
    if new != old:  # one chance in a million that the new code equals the old one
        assert_problem(api("POST", "/api/v1/auth/register/mobile/confirm",
                           {"registration_id": started["registration_id"], "otp": old}), 400, "otp_invalid")
    assert api("POST", "/api/v1/auth/register/mobile/confirm",
               {"registration_id": started["registration_id"], "otp": new}).status == 201
    assert_problem(api("POST", "/api/v1/auth/otp/resend", {"registration_id": started["registration_id"]}),
                   400, "otp_used")


def test_codes_per_number_are_limited(api, gateway_url):
    person = accounts.random_person()
    started = _start(api, person)
    replies = [api("POST", "/api/v1/auth/otp/resend", {"registration_id": started["registration_id"]})
               for _ in range(10)]
    assert [r.status for r in replies].count(200) == 9  # ten codes in fifteen minutes, then no more
    assert_problem(replies[-1], 429, "otp_rate_limited")


@pytest.mark.parametrize("body", [{}, {"registration_id": "6f1c1a10-0000-4000-8000-000000000001",
                                       "login_id": "6f1c1a10-0000-4000-8000-000000000002"}])
def test_resend_needs_exactly_one_id(api, body):
    assert_problem(api("POST", "/api/v1/auth/otp/resend", body), 422, "validation_failed")


def test_resend_for_unknown_ids(api):
    assert_problem(api("POST", "/api/v1/auth/otp/resend", {"login_id": "6f1c1a10-0000-4000-8000-000000000001"}),
                   404, "login_not_found")
