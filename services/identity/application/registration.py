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
import uuid

import psycopg2.errors

from portal_common.contracts.identity import ConfirmRegistrationBody, RegisterBhxhBody, RegisterMobileBody
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventContext, EventStore
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.application import codes
from services.identity.application.shared import load, now, off_loop, record
from services.identity.domain import accounts, ids, passwords
from services.identity.settings import Settings

ACCOUNT_EXISTS = ("account_exists", "An account already exists for this CCCD; sign in instead.")
BHXH_MISMATCH = ("bhxh_mismatch", "The social-insurance registry names another person for this code.")


def _checked_person(data: dict) -> tuple[str, str | None]:
    """Structure checks shared by the citizen flows; returns (phone, old CMT)."""
    ids.require_cccd(data["cccd"], data["date_of_birth"], data["gender"])
    phone = ids.require_phone(data["phone"])
    legacy = data.get("old_id_number")
    if legacy is not None:
        ids.require_cmt(legacy)
    passwords.require_acceptable(data["password"], (data["cccd"], phone, legacy or ""))
    return phone, legacy


def _start(db: Database, adapters: Adapters, settings: Settings, method: str, data: dict, phone: str,
           legacy: str | None, extra: dict) -> dict:
    password_hash = off_loop(passwords.hash_password, data["password"], settings.argon2)
    reg_id = uuid.uuid4()
    code, code_hash = codes.new_code(reg_id)
    stored = {
        "cccd": data["cccd"], "full_name": ids.clean_name(data["full_name"]),
        "date_of_birth": data["date_of_birth"].isoformat(), "gender": data["gender"], "phone": phone,
        "legacy_id": legacy, "password_hash": password_hash, **extra,
    }
    with db.transaction() as cur:
        codes.check_send_budget(cur, phone)
        repo.insert_registration(cur, reg_id, method, data["cccd"], phone, stored, code_hash,
                                 now() + dt.timedelta(seconds=settings.otp_ttl_s))
    sent = codes.send(adapters.sms, phone, code, settings.otp_ttl_s)
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
    ids.require_bhxh_code(data["bhxh_code"])
    phone, legacy = _checked_person(data)
    insured = adapters.social_insurance.insured(data["bhxh_code"])
    if insured is None:
        raise InvalidInput("bhxh_unknown", "The social-insurance registry has no person with this code.")
    if insured.cccd != data["cccd"] or not ids.same_name(insured.full_name, data["full_name"]):
        raise InvalidInput(*BHXH_MISMATCH)
    if insured.date_of_birth is not None and insured.date_of_birth != data["date_of_birth"]:
        raise InvalidInput(*BHXH_MISMATCH)
    return _start(db, adapters, settings, "bhxh", data, phone, legacy, {"bhxh_code": data["bhxh_code"]})


def confirm(db: Database, store: EventStore, settings: Settings, raw: dict, ctx: EventContext) -> dict:
    """Check the code; on success create the account and record its events."""
    data = load(ConfirmRegistrationBody, raw)
    failure = None
    with db.transaction() as cur:
        row = repo.registration(cur, data["registration_id"])
        if row is None or row["method"] not in ("mobile", "bhxh"):
            raise NotFound("registration_not_found", "No pending registration has this id.")
        failure = codes.verify(cur, "registrations", row, data["otp"], settings.otp_attempts)
        if failure is None:
            try:
                with repo.savepoint(cur, "create_citizen"):
                    account = _create_citizen(cur, store, row, ctx)
            except psycopg2.errors.UniqueViolation:  # a concurrent confirmation won the race
                failure = Conflict(*ACCOUNT_EXISTS)
    if failure is not None:
        raise failure
    return account


def _create_citizen(cur, store: EventStore, row: dict, ctx: EventContext) -> dict:
    person = row["data"]
    if repo.identifier_taken(cur, person["cccd"], person.get("legacy_id")) or (
            person.get("bhxh_code") and repo.bhxh_taken(cur, person["bhxh_code"])):
        raise Conflict(*ACCOUNT_EXISTS)
    account_id, method = str(uuid.uuid4()), row["method"]
    repo.insert_account(cur, accounts.citizen(account_id, method, person))
    repo.finish(cur, "registrations", row["id"])
    repo.forget_registration_password(cur, row["id"])
    record(store, cur, f"account-{account_id}", accounts.citizen_registered(account_id, method, person), ctx)
    return {"account_id": account_id, "role": "citizen", "status": "registered", "method": method}
