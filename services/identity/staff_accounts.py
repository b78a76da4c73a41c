"""Staff accounts (agency officers, catalog editors, operators) and their sign-in.

An operator creates the account (username, role, the officer's agency, name, phone); the
person gets an activation code by SMS and sets their own password with it, so nobody else
ever knows it. Staff then sign in like citizens, with username + password + one-time code;
an officer's tokens carry their agency. When a person leaves or is compromised, an operator
disables the account (its sessions end, the gateway refuses its access tokens at once, sign-in
fails like a wrong password) and may reinstate it later.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib

from portal_common.contracts.identity import (
    ActivateStaffBody,
    NewStaffBody,
    StaffListQuery,
    StaffLoginBody,
    StaffStatusBody,
)
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import otp_flow, sessions, signin
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.common import load, now, off_loop, record
from services.identity.domain import ids, passwords
from services.identity.settings import Settings

STAFF_ROLES = ("officer", "editor", "operator")
_NO_ACTIVATION = ("activation_not_found", "No staff account waits for activation under this username.")
_NO_STAFF = ("staff_not_found", "No staff account has this id.")


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
        if row is None or account is None or account["status"] != "pending":  # a disabled one waits for nothing
            raise NotFound(*_NO_ACTIVATION)
        failure = otp_flow.verify(cur, "registrations", row, data["otp"], settings.otp_attempts)
        if failure is None:
            cur.execute("UPDATE accounts SET password_hash = %s, status = 'active', updated_at = now() "
                        "WHERE id = %s AND status = 'pending'", (password_hash, str(account["id"])))
            if cur.rowcount == 0:  # disabled since the first read
                raise NotFound(*_NO_ACTIVATION)
            repo.finish(cur, "registrations", row["id"])
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


def _staff_id(account_id: str) -> uuid.UUID:
    """The id as a UUID; anything else is an unknown account, like any id no staff account has."""
    try:
        return uuid.UUID(str(account_id))
    except ValueError:
        raise NotFound(*_NO_STAFF) from None


def _username(account: dict) -> str:
    return account["identifier"].removeprefix("staff:")


def _status_event(event_type: str, account: dict, reason: str) -> NewEvent:
    return NewEvent(event_type, {
        "account_id": str(account["id"]), "username": _username(account), "role": account["role"],
        "agency_code": account["agency_code"], "reason": reason})


def disable(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext) -> dict:
    """Disable a staff account at once: no sign-in, its sessions ended, its access tokens refused.

    An operator cannot disable their own account, so the last operator cannot lock everyone out."""
    data = load(StaffStatusBody, raw)
    key = _staff_id(account_id)
    with db.transaction() as cur:
        repo.lock_live_refresh_tokens(cur, key)
        account = repo.staff_by_id(cur, key, STAFF_ROLES)
        if account is None:
            raise NotFound(*_NO_STAFF)
        if str(account["id"]) == str(ctx.actor.id):
            raise Conflict("cannot_disable_self", "An operator cannot disable their own account.")
        if account["status"] == "disabled":
            raise Conflict("staff_already_disabled", "This staff account is already disabled.")
        repo.set_staff_status(cur, account["id"], "disabled")
        ended = repo.revoke_account_session_ids(cur, account["id"], "account_disabled")
        events = [_status_event("StaffAccountDisabled", account, data["reason"])]
        if ended:
            events.append(sessions.signed_out(account["id"], "account_disabled", ended, all_sessions=True))
        record(store, cur, f"account-{account['id']}", events, ctx)
    return {"account_id": str(account["id"]), "username": _username(account), "status": "disabled",
            "sessions_ended": len(ended)}


def reinstate(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext) -> dict:
    """Let a disabled staff account sign in again (one never activated goes back to waiting for it);
    the tokens issued before the disable stay refused."""
    data = load(StaffStatusBody, raw)
    key = _staff_id(account_id)
    with db.transaction() as cur:
        account = repo.staff_by_id(cur, key, STAFF_ROLES)
        if account is None:
            raise NotFound(*_NO_STAFF)
        if account["status"] != "disabled":
            raise Conflict("staff_not_disabled", "This staff account is not disabled.")
        status = "active" if account["password_hash"] else "pending"
        repo.set_staff_status(cur, account["id"], status)
        record(store, cur, f"account-{account['id']}",
               [_status_event("StaffAccountReinstated", account, data["reason"])], ctx)
    return {"account_id": str(account["id"]), "username": _username(account), "status": status}


def page(db: Database, raw: dict) -> dict:
    """Staff accounts for operators, filtered by agency, status and role, newest first."""
    query = load(StaffListQuery, raw)
    with db.transaction() as cur:
        rows, total = repo.staff_page(cur, STAFF_ROLES, query, query["page"], query["page_size"])
    items = [{"account_id": str(r["id"]), "username": _username(r), "role": r["role"],
              "full_name": r["full_name"], "agency_code": r["agency_code"], "status": r["status"],
              "created_at": r["created_at"].isoformat(),
              "disabled_at": r["disabled_at"].isoformat() if r["disabled_at"] else None} for r in rows]
    return {"items": items, "total": total, "page": query["page"], "page_size": query["page_size"]}
