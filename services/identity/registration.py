"""Registration of citizens by mobile subscription and by social-insurance code.

Mobile: the CCCD's structure must agree with the declared birth date and gender, the carrier
must name this CCCD as the number's owner (thuê bao chính chủ), the password must pass the
policy; then a one-time code goes to the number and the account exists once it is confirmed.
BHXH: the social-insurance registry must return the same CCCD, name and birth date for the
code; the phone is then confirmed the same way. Whether a CCCD already has an account is
only said after the code proves the caller holds the number the carrier ties to that CCCD.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid

import psycopg2.errors

from portal_common.contracts.identity import ConfirmRegistrationBody, RegisterBhxhBody, RegisterMobileBody
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import otp_flow
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.common import load, now, off_loop, record
from services.identity.domain import ids, passwords
from services.identity.settings import Settings


def _checked_person(data: dict) -> tuple[str, str | None]:
    """Structure checks shared by the citizen flows; returns (phone, old CMT)."""
    problem = ids.cccd_problem(data["cccd"], data["date_of_birth"], data["gender"])
    if problem is not None:
        raise InvalidInput(problem.code, problem.message, [{"field": "cccd", "message": problem.message}])
    phone = ids.normalize_phone(data["phone"])
    if phone is None:
        raise InvalidInput("invalid_phone", "Not a Vietnamese mobile number.",
                           [{"field": "phone", "message": "Not a Vietnamese mobile number."}])
    legacy = data.get("old_id_number")
    if legacy is not None and not ids.is_cmt(legacy):
        raise InvalidInput("invalid_cmt", "An old ID card (CMT) number has 9 digits.",
                           [{"field": "old_id_number", "message": "An old ID card (CMT) number has 9 digits."}])
    problems = passwords.policy_problems(data["password"], (data["cccd"], phone, legacy or ""))
    if problems:
        raise InvalidInput("weak_password", "The password does not meet the policy.",
                           [{"field": "password", "message": m} for m in problems])
    return phone, legacy


def _same_name(a: str, b: str) -> bool:
    def fold(s: str) -> str:
        return " ".join(unicodedata.normalize("NFC", s).casefold().split())
    return fold(a) == fold(b)


def _start(db: Database, adapters: Adapters, settings: Settings, method: str, data: dict, phone: str,
           legacy: str | None, extra: dict) -> dict:
    password_hash = off_loop(passwords.hash_password, data["password"])
    reg_id = uuid.uuid4()
    code, code_hash = otp_flow.new_code(reg_id)
    stored = {
        "cccd": data["cccd"], "full_name": " ".join(data["full_name"].split()),
        "date_of_birth": data["date_of_birth"].isoformat(), "gender": data["gender"], "phone": phone,
        "legacy_id": legacy, "password_hash": password_hash, **extra,
    }
    with db.transaction() as cur:
        otp_flow.check_send_budget(cur, phone)
        repo.insert_registration(cur, reg_id, method, data["cccd"], phone, stored, code_hash,
                                 now() + dt.timedelta(seconds=settings.otp_ttl_s))
    sent = otp_flow.send(adapters.sms, phone, code, settings.otp_ttl_s)
    return {"registration_id": str(reg_id), "method": method, **sent}


def start_mobile(db: Database, adapters: Adapters, settings: Settings, raw: dict) -> dict:
    data = load(RegisterMobileBody, raw)
    phone, legacy = _checked_person(data)
    subscriber = adapters.carrier.subscriber(phone)
    if subscriber is None:
        raise InvalidInput("phone_unknown_to_carrier", "The carrier has no subscription for this number.")
    if subscriber.cccd != data["cccd"]:
        raise InvalidInput("phone_not_owned",
                           "This number is not registered to this CCCD with its carrier (not thuê bao chính chủ).")
    return _start(db, adapters, settings, "mobile", data, phone, legacy, {"carrier": subscriber.carrier})


def start_bhxh(db: Database, adapters: Adapters, settings: Settings, raw: dict) -> dict:
    data = load(RegisterBhxhBody, raw)
    if not ids.is_bhxh_code(data["bhxh_code"]):
        raise InvalidInput("invalid_bhxh_code", "A social-insurance (BHXH) code has 10 digits.",
                           [{"field": "bhxh_code", "message": "A social-insurance (BHXH) code has 10 digits."}])
    phone, legacy = _checked_person(data)
    insured = adapters.social_insurance.insured(data["bhxh_code"])
    if insured is None:
        raise InvalidInput("bhxh_unknown", "The social-insurance registry has no person with this code.")
    if insured.cccd != data["cccd"] or not _same_name(insured.full_name, data["full_name"]):
        raise InvalidInput("bhxh_mismatch", "The social-insurance registry names another person for this code.")
    if insured.date_of_birth is not None and insured.date_of_birth != data["date_of_birth"]:
        raise InvalidInput("bhxh_mismatch", "The social-insurance registry names another person for this code.")
    return _start(db, adapters, settings, "bhxh", data, phone, legacy, {"bhxh_code": data["bhxh_code"]})


def confirm(db: Database, store: EventStore, settings: Settings, raw: dict, ctx: EventContext) -> dict:
    """Check the code; on success create the account and record its events."""
    data = load(ConfirmRegistrationBody, raw)
    failure = None
    with db.transaction() as cur:
        row = repo.registration(cur, data["registration_id"])
        if row is None or row["method"] not in ("mobile", "bhxh"):
            raise NotFound("registration_not_found", "No pending registration has this id.")
        failure = otp_flow.verify(cur, "registrations", row, data["otp"], settings.otp_attempts)
        if failure is None:
            try:
                with cur.connection.cursor() as probe:
                    probe.execute("SAVEPOINT create_citizen")
                account = _create_citizen(cur, store, row, ctx)
            except psycopg2.errors.UniqueViolation:  # a concurrent confirmation won the race
                with cur.connection.cursor() as probe:
                    probe.execute("ROLLBACK TO SAVEPOINT create_citizen")
                failure = Conflict("account_exists", "An account already exists for this CCCD; sign in instead.")
    if failure is not None:
        raise failure
    return account


def _create_citizen(cur, store: EventStore, row: dict, ctx: EventContext) -> dict:
    d = row["data"]
    if repo.identifier_taken(cur, d["cccd"], d.get("legacy_id")) or (
            d.get("bhxh_code") and repo.bhxh_taken(cur, d["bhxh_code"])):
        raise Conflict("account_exists", "An account already exists for this CCCD; sign in instead.")
    account_id = uuid.uuid4()
    method = row["method"]
    repo.insert_account(cur, {
        "id": str(account_id), "role": "citizen", "identifier": d["cccd"], "legacy_id": d.get("legacy_id"),
        "full_name": d["full_name"], "date_of_birth": d["date_of_birth"], "gender": d["gender"],
        "phone": d["phone"], "bhxh_code": d.get("bhxh_code"), "password_hash": d["password_hash"],
        "methods": [method, "password"],
    })
    repo.finish(cur, "registrations", row["id"])
    # The pending row no longer needs the password hash.
    cur.execute("UPDATE registrations SET data = data - 'password_hash' WHERE id = %s", (str(row["id"]),))
    aid = str(account_id)
    events = [
        NewEvent("CitizenRegistered", {
            "account_id": aid, "cccd": d["cccd"], "full_name": d["full_name"],
            "date_of_birth": d["date_of_birth"], "gender": d["gender"], "phone": d["phone"], "method": method}),
        NewEvent("AccountVerified", {"account_id": aid, "method": "carrier" if method == "mobile" else "bhxh",
                                     "detail": d.get("carrier") if method == "mobile" else None}),
        NewEvent("AccountVerified", {"account_id": aid, "method": "sms", "detail": None}),
    ]
    record(store, cur, f"account-{aid}", events, ctx)
    return {"account_id": aid, "role": "citizen", "status": "registered", "method": method}
