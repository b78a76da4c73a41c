"""Staff accounts (agency officers, catalog editors, operators) and their sign-in.

An operator creates the account (username, role, the officer's agency, name, phone); the
person gets an activation code by SMS and sets their own password with it, so nobody else
ever knows it. Staff then sign in like citizens, with username + password + one-time code;
an officer's tokens carry their agency.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib

from portal_common.contracts.identity import ActivateStaffBody, NewStaffBody, StaffLoginBody
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import otp_flow, signin
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.common import load, now, off_loop, record
from services.identity.domain import ids, passwords
from services.identity.settings import Settings

STAFF_ROLES = ("officer", "editor", "operator")


def identifier(username: str) -> str:
    return f"staff:{username}"


def create(db: Database, store: EventStore, adapters: Adapters, settings: Settings, raw: dict,
           ctx: EventContext) -> dict:
    data = load(NewStaffBody, raw)
    phone = ids.normalize_phone(data["phone"])
    if phone is None:
        raise InvalidInput("invalid_phone", "Not a Vietnamese mobile number.",
                           [{"field": "phone", "message": "Not a Vietnamese mobile number."}])
    account_id, reg_id = str(uuid.uuid4()), uuid.uuid4()
    code, code_hash = otp_flow.new_code(reg_id)
    with db.transaction() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(identifier(data["username"]).encode()),))
        if repo.identifier_taken(cur, identifier(data["username"])):
            raise Conflict("username_taken", "A staff account already has this username.")
        repo.insert_account(cur, {
            "id": account_id, "role": data["role"], "identifier": identifier(data["username"]),
            "full_name": " ".join(data["full_name"].split()), "phone": phone, "agency_code": data.get("agency_code"),
            "methods": ["password"], "status": "pending"})
        repo.insert_registration(cur, reg_id, "staff", identifier(data["username"]), phone,
                                 {"account_id": account_id}, code_hash,
                                 now() + dt.timedelta(seconds=max(settings.otp_ttl_s, 24 * 3600)))
        record(store, cur, f"account-{account_id}", [NewEvent("StaffAccountCreated", {
            "account_id": account_id, "username": data["username"], "role": data["role"],
            "agency_code": data.get("agency_code")})], ctx)
    sent = otp_flow.send(adapters.sms, phone, code, 24 * 3600)
    return {"account_id": account_id, "username": data["username"], "role": data["role"],
            "agency_code": data.get("agency_code"), "status": "pending", "activation_code_sent_to": sent["otp_sent_to"]}


def activate(db: Database, store: EventStore, settings: Settings, raw: dict, ctx: EventContext) -> dict:
    """The staff member proves their phone with the code and sets their password."""
    data = load(ActivateStaffBody, raw)
    ident = identifier(data["username"])
    with db.transaction() as cur:
        account = repo.account_by_identifier(cur, ident)
        phone = account["phone"] if account else ""
    problems = passwords.policy_problems(data["password"], (phone, data["username"]))
    if problems:
        raise InvalidInput("weak_password", "The password does not meet the policy.",
                           [{"field": "password", "message": m} for m in problems])
    password_hash = off_loop(passwords.hash_password, data["password"])
    failure = None
    with db.transaction() as cur:
        cur.execute("SELECT * FROM registrations WHERE method = 'staff' AND identifier = %s "
                    "ORDER BY created_at DESC LIMIT 1 FOR UPDATE", (ident,))
        row = cur.fetchone()
        if row is None or account is None:
            raise NotFound("activation_not_found", "No staff account waits for activation under this username.")
        outcome = otp_flow.check(row, data["otp"], settings.otp_attempts, now())
        if not outcome.ok:
            if outcome.error.code == "otp_invalid":
                repo.count_attempt(cur, "registrations", row["id"], failed=outcome.exhausted)
            failure = outcome.error
        else:
            repo.finish(cur, "registrations", row["id"])
            cur.execute("UPDATE accounts SET password_hash = %s, status = 'active', updated_at = now() "
                        "WHERE id = %s", (password_hash, str(account["id"])))
            record(store, cur, f"account-{account['id']}", [
                NewEvent("StaffAccountActivated", {"account_id": str(account["id"])})], ctx)
    if failure is not None:
        raise failure
    return {"account_id": str(account["id"]), "status": "active"}


def login(db: Database, store: EventStore, adapters: Adapters, settings: Settings, raw: dict,
          context: dict | None, ctx: EventContext) -> dict:
    data = load(StaffLoginBody, raw)
    return signin.password_step(db, store, adapters, settings, identifier(data["username"]), data["password"],
                                STAFF_ROLES, context, ctx)
