"""Changing a password (signed in, with the current one) and resetting a forgotten one with
a code sent to the account's phone. Either way every session of the account ends.

``forgot`` answers the same whether or not the identifier has an account (a reset id is
returned in both cases, and a wrong code, an unknown id and an account without a phone all
give ``otp_invalid``), so it cannot be used to find out who is registered.
"""

from __future__ import annotations

import datetime as dt
import uuid

from portal_common.contracts.identity import ChangePasswordBody, ForgotPasswordBody, ResetPasswordBody
from portal_common.db import Database
from portal_common.errors import InvalidInput, ServiceError, TooManyRequests, Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.application import attempts, codes
from services.identity.application.shared import load, now, off_loop, record
from services.identity.domain import accounts, passwords
from services.identity.settings import Settings

_INVALID = ("otp_invalid", "The code is wrong, expired or was not for this reset.")


def forgot(db: Database, adapters: Adapters, settings: Settings, raw: dict) -> dict:
    data = load(ForgotPasswordBody, raw)
    reset_id = uuid.uuid4()
    answer = {"reset_id": str(reset_id), "expires_in": settings.otp_ttl_s,
              "message": "If this account exists and has a phone number, a code was sent to it."}
    with db.transaction() as cur:
        account = repo.account_by_identifier(cur, accounts.reset_identifier(data["cccd"]))
        if account is None or account["role"] not in accounts.PASSWORD_ROLES or not account["phone"] \
                or account["status"] != "active":
            return answer
        try:
            codes.check_send_budget(cur, account["phone"])
        except TooManyRequests:
            return answer  # a refusal here would tell that the account exists
        code, code_hash = codes.new_code(reset_id)
        repo.insert_login(cur, reset_id, account["id"], "reset", code_hash,
                          now() + dt.timedelta(seconds=settings.otp_ttl_s), None)
    codes.send(adapters.sms, account["phone"], code, settings.otp_ttl_s)
    return answer


def _set_password(cur, store: EventStore, account: dict, password_hash: str, reason: str,
                  ctx: EventContext) -> int:
    repo.set_password_hash(cur, account["id"], password_hash)
    ended = repo.revoke_account_session_ids(cur, account["id"], f"password_{reason}")
    repo.clear_failures(cur, "account", str(account["id"]))
    record(store, cur, f"account-{account['id']}", [NewEvent("PasswordChanged", {
        "account_id": str(account["id"]), "reason": reason, "session_ids": ended})], ctx)
    return len(ended)


def _policy(password: str, account: dict) -> None:
    passwords.require_acceptable(password, accounts.personal_values(account), "new_password")


def reset(db: Database, store: EventStore, settings: Settings, raw: dict, ctx: EventContext) -> dict:
    data = load(ResetPasswordBody, raw)
    with db.transaction() as cur:
        row = repo.password_reset(cur, data["reset_id"])
        account = repo.account_by_id(cur, row["account_id"]) if row else None
    if row is None:
        raise ServiceError(*_INVALID)
    _policy(data["new_password"], account)
    new_hash = off_loop(passwords.hash_password, data["new_password"], settings.argon2)
    failure = None
    with db.transaction() as cur:
        row = repo.login(cur, data["reset_id"])
        failure = codes.verify(cur, "logins", row, data["otp"], settings.otp_attempts)
        if failure is None:
            repo.finish(cur, "logins", row["id"])
            ended = _set_password(cur, store, account, new_hash, "reset", ctx)
        elif failure.code == "otp_invalid":
            failure = ServiceError(*_INVALID)
    if failure is not None:
        raise failure
    return {"account_id": str(account["id"]), "status": "password_reset", "sessions_ended": ended}


def change(db: Database, store: EventStore, settings: Settings, account_id: str, raw: dict,
           context: dict | None, ctx: EventContext) -> dict:
    data = load(ChangePasswordBody, raw)
    with db.transaction() as cur:
        account = repo.account_by_id(cur, account_id)
    if account is None or account["role"] not in accounts.PASSWORD_ROLES or not account["password_hash"]:
        raise InvalidInput("no_password", "This account does not sign in with a password.")
    if not off_loop(passwords.verify_password, account["password_hash"], data["current_password"],
                    settings.argon2):
        with db.transaction() as cur:
            attempts.register_failure(cur, store, settings, str(account["id"]), str(account["id"]), context,
                                    "password", "bad_credentials", ctx)
        raise Unauthorized("invalid_credentials", "The current password is not right.")
    _policy(data["new_password"], account)
    new_hash = off_loop(passwords.hash_password, data["new_password"], settings.argon2)
    with db.transaction() as cur:
        ended = _set_password(cur, store, account, new_hash, "change", ctx)
    return {"account_id": str(account["id"]), "status": "password_changed", "sessions_ended": ended}
