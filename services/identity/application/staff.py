"""Staff accounts (agency officers, catalog editors, operators) and agency back-office systems.

Staff: an operator creates the account (username, role, the officer's agency, name, phone);
the person gets an activation code by SMS and sets their own password with it, so nobody else
ever knows it. Staff then sign in like citizens, with username + password + one-time code;
an officer's tokens carry their agency. When a person leaves or is compromised, an operator
disables the account (its sessions end, the gateway refuses its access tokens at once, sign-in
fails like a wrong password) and may reinstate it later.

Agency systems: an operator registers a system for one agency and gets a client id and secret,
shown once; only a SHA-256 of the (256-bit random) secret is kept. The system trades them for
a short-lived access token with role ``agency_system`` scoped to its agency
(``POST /api/v1/auth/token``); revoking the client stops new tokens at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

from portal_common.contracts.identity import (
    ActivateStaffBody,
    ClientCredentialsBody,
    NewAgencySystemBody,
    NewStaffBody,
    StaffListQuery,
    StaffLoginBody,
    StaffStatusBody,
)
from portal_common.db import Database
from portal_common.errors import Conflict, NotFound, Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.application import attempts, codes, signin
from services.identity.application.shared import load, now, off_loop, record
from services.identity.domain import accounts, ids, passwords, tokens
from services.identity.domain.accounts import NO_STAFF, STAFF_ROLES, staff_identifier, username
from services.identity.domain.sessions import signed_out
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings

ACTIVATION_TTL_S = 24 * 3600
_NO_ACTIVATION = ("activation_not_found", "No staff account waits for activation under this username.")
_BAD_CLIENT = ("invalid_client", "The client id or secret is not right, or the client was revoked.")


# -- staff accounts ----------------------------------------------------------------------------

def create(db: Database, store: EventStore, adapters: Adapters, settings: Settings, raw: dict,
           ctx: EventContext) -> dict:
    data = load(NewStaffBody, raw)
    phone = ids.require_phone(data["phone"])
    ident = staff_identifier(data["username"])
    account_id, reg_id = str(uuid.uuid4()), uuid.uuid4()
    code, code_hash = codes.new_code(reg_id)
    with db.transaction() as cur:
        repo.lock_identifier(cur, ident)
        if repo.identifier_taken(cur, ident):
            raise Conflict("username_taken", "A staff account already has this username.")
        repo.insert_account(cur, {
            "id": account_id, "role": data["role"], "identifier": ident,
            "full_name": ids.clean_name(data["full_name"]), "phone": phone, "agency_code": data.get("agency_code"),
            "methods": ["password"], "status": "pending"})
        repo.insert_registration(cur, reg_id, "staff", ident, phone, {"account_id": account_id}, code_hash,
                                 now() + dt.timedelta(seconds=max(settings.otp_ttl_s, ACTIVATION_TTL_S)))
        record(store, cur, f"account-{account_id}", [NewEvent("StaffAccountCreated", {
            "account_id": account_id, "username": data["username"], "role": data["role"],
            "agency_code": data.get("agency_code")})], ctx)
    sent = codes.send(adapters.sms, phone, code, ACTIVATION_TTL_S)
    return {"account_id": account_id, "username": data["username"], "role": data["role"],
            "agency_code": data.get("agency_code"), "status": "pending", "activation_code_sent_to": sent["otp_sent_to"]}


def activate(db: Database, store: EventStore, settings: Settings, raw: dict, ctx: EventContext) -> dict:
    """The staff member proves their phone with the code and sets their password."""
    data = load(ActivateStaffBody, raw)
    ident = staff_identifier(data["username"])
    with db.transaction() as cur:
        account = repo.account_by_identifier(cur, ident)
        phone = account["phone"] if account else ""
    passwords.require_acceptable(data["password"], (phone, data["username"]))
    password_hash = off_loop(passwords.hash_password, data["password"], settings.argon2)
    failure = None
    with db.transaction() as cur:
        row = repo.staff_activation(cur, ident)
        if row is None or account is None or account["status"] != "pending":  # a disabled one waits for nothing
            raise NotFound(*_NO_ACTIVATION)
        failure = codes.verify(cur, "registrations", row, data["otp"], settings.otp_attempts)
        if failure is None:
            if not repo.activate_staff(cur, account["id"], password_hash):  # disabled since the first read
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
    return signin.password_step(db, store, adapters, settings, staff_identifier(data["username"]),
                                data["password"], STAFF_ROLES, context, ctx)


def id_of(db: Database, name: str) -> str:
    """The account id of the staff member with username ``name`` (for the operator command)."""
    with db.transaction() as cur:
        account = repo.account_by_identifier(cur, staff_identifier(name))
    if account is None:
        raise NotFound("staff_not_found", "No staff account has this username.")
    return str(account["id"])


def disable(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext) -> dict:
    """Disable a staff account at once: no sign-in, its sessions ended, its access tokens refused.

    An operator cannot disable their own account, so the last operator cannot lock everyone out."""
    data = load(StaffStatusBody, raw)
    key = accounts.staff_id(account_id)
    with db.transaction() as cur:
        repo.lock_live_refresh_tokens(cur, key)
        account = repo.staff_by_id(cur, key, STAFF_ROLES)
        if account is None:
            raise NotFound(*NO_STAFF)
        if str(account["id"]) == str(ctx.actor.id):
            raise Conflict("cannot_disable_self", "An operator cannot disable their own account.")
        if account["status"] == "disabled":
            raise Conflict("staff_already_disabled", "This staff account is already disabled.")
        repo.set_staff_status(cur, account["id"], "disabled")
        ended = repo.revoke_account_session_ids(cur, account["id"], "account_disabled")
        events = [accounts.staff_status_event("StaffAccountDisabled", account, data["reason"])]
        if ended:
            events.append(signed_out(account["id"], "account_disabled", ended, all_sessions=True))
        record(store, cur, f"account-{account['id']}", events, ctx)
    return {"account_id": str(account["id"]), "username": username(account), "status": "disabled",
            "sessions_ended": len(ended)}


def reinstate(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext) -> dict:
    """Let a disabled staff account sign in again (one never activated goes back to waiting for it);
    the tokens issued before the disable stay refused."""
    data = load(StaffStatusBody, raw)
    key = accounts.staff_id(account_id)
    with db.transaction() as cur:
        account = repo.staff_by_id(cur, key, STAFF_ROLES)
        if account is None:
            raise NotFound(*NO_STAFF)
        if account["status"] != "disabled":
            raise Conflict("staff_not_disabled", "This staff account is not disabled.")
        status = "active" if account["password_hash"] else "pending"
        repo.set_staff_status(cur, account["id"], status)
        record(store, cur, f"account-{account['id']}",
               [accounts.staff_status_event("StaffAccountReinstated", account, data["reason"])], ctx)
    return {"account_id": str(account["id"]), "username": username(account), "status": status}


def page(db: Database, raw: dict) -> dict:
    """Staff accounts for operators, filtered by agency, status and role, newest first."""
    query = load(StaffListQuery, raw)
    with db.transaction() as cur:
        rows, total = repo.staff_page(cur, STAFF_ROLES, query, query["page"], query["page_size"])
    return {"items": [accounts.staff_item(r) for r in rows], "total": total, "page": query["page"],
            "page_size": query["page_size"]}


# -- agency systems ------------------------------------------------------------------------------

def register_system(db: Database, store: EventStore, raw: dict, ctx: EventContext) -> dict:
    data = load(NewAgencySystemBody, raw)
    account_id = str(uuid.uuid4())
    client_id, secret = tokens.new_client_credentials()
    with db.transaction() as cur:
        repo.insert_agency_system(cur, account_id, client_id, data["agency_code"], data["name"],
                                  tokens.client_secret_hash(secret))
        record(store, cur, f"account-{account_id}", [NewEvent("AgencySystemRegistered", {
            "account_id": account_id, "client_id": client_id, "agency_code": data["agency_code"],
            "name": data["name"]})], ctx)
    return {"client_id": client_id, "client_secret": secret, "agency_code": data["agency_code"],
            "account_id": account_id, "name": data["name"]}


def revoke_system(db: Database, store: EventStore, client_id: str, ctx: EventContext) -> dict:
    with db.transaction() as cur:
        row = repo.revoke_agency_system(cur, client_id)
        if row is None:
            raise NotFound("client_not_found", "No active agency system has this client id.")
        record(store, cur, f"account-{row['account_id']}", [NewEvent("AgencySystemRevoked", {
            "account_id": str(row["account_id"]), "client_id": client_id, "agency_code": row["agency_code"]})], ctx)
    return {"client_id": client_id, "status": "revoked"}


def client_token(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
                 context: dict | None, ctx: EventContext) -> dict:
    """An access token for an agency system's client credentials (failures count like sign-ins)."""
    data = load(ClientCredentialsBody, raw)
    source = attempts.source_key(context)
    with db.transaction() as cur:
        attempts.refuse_if_locked(cur, None, source)
        row = repo.agency_client(cur, data["client_id"])
        good = tokens.client_secret_matches(data["client_secret"], row["secret_hash"] if row else None)
        if not (good and row and row["revoked_at"] is None and row["status"] == "active"):
            attempts.register_failure(cur, store, settings, None, str(row["id"]) if row else None, context,
                                      "password", "bad_credentials", ctx)
            failure = Unauthorized(*_BAD_CLIENT)
        else:
            failure = None
    if failure is not None:
        raise failure
    access, _ = tokens.access_token(key, row, settings.access_ttl_s)
    return {"access_token": access, "token_type": "Bearer", "expires_in": settings.access_ttl_s,
            "account_id": str(row["id"]), "role": "agency_system", "agency_code": row["agency_code"]}
