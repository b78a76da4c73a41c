"""Sign-in: ``login`` takes a password (CCCD, or an old 9-digit CMT, + password, then a
one-time code to the account's phone) or a certificate (``certificates.login``); staff use
the same password step with their username.

No answer tells an unknown ID number from a wrong password: both are ``invalid_credentials``
after the same Argon2 work, and failures are counted and locked per account (or identifier)
and per source address (``attempts``).
"""

from __future__ import annotations

import datetime as dt
import uuid

from portal_common.contracts.identity import LoginBody, LoginConfirmBody
from portal_common.db import Database
from portal_common.errors import InvalidInput, NotFound, ServiceError, Unauthorized
from portal_common.eventstore import EventContext, EventStore
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.application import certificates, codes, sessions
from services.identity.application.attempts import (
    BAD_CREDENTIALS,
    refuse_if_locked,
    register_failure,
    source_key,
    succeeded,
)
from services.identity.application.shared import client_ip, load, now, off_loop
from services.identity.domain import accounts, ids, passwords
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings


def login(db: Database, store: EventStore, key: SigningKey, adapters: Adapters, settings: Settings, raw: dict,
          context: dict | None, ctx: EventContext) -> dict:
    """``POST /auth/login``: by certificate (tokens at once) or by password (a code to confirm)."""
    if isinstance(raw, dict) and raw.get("method") == "certificate":
        return certificates.login(db, store, key, settings, raw, context, ctx)
    return start_password(db, store, adapters, settings, raw, context, ctx)


def start_password(db: Database, store: EventStore, adapters: Adapters, settings: Settings, raw: dict,
                   context: dict | None, ctx: EventContext) -> dict:
    """Check the password; on success send a one-time code to the account's phone."""
    data = load(LoginBody, raw)
    if data["method"] != "password":
        raise InvalidInput("validation_failed", "Use the certificate sign-in for method=certificate.")
    identifier = ids.require_signin_id(data["cccd"])
    return password_step(db, store, adapters, settings, identifier, data["password"], accounts.CITIZEN_ROLES,
                         context, ctx)


def password_step(db: Database, store: EventStore, adapters: Adapters, settings: Settings, identifier: str,
                  password: str, roles: tuple[str, ...], context: dict | None, ctx: EventContext) -> dict:
    """Check an identifier's password (for accounts of ``roles``) and send the sign-in code."""
    source = source_key(context)
    with db.transaction() as cur:
        account = repo.account_by_identifier(cur, identifier)
        if account is not None and account["role"] not in roles:
            account = None
        key = str(account["id"]) if account else f"id:{identifier}"
        refuse_if_locked(cur, key, source)
    stored = account["password_hash"] if account else None
    good = off_loop(passwords.verify_password, stored, password, settings.argon2)
    good = good and account is not None and account["status"] == "active" and bool(account["phone"])
    failure = None
    with db.transaction() as cur:
        if not good:
            register_failure(cur, store, settings, key, str(account["id"]) if account else None, context,
                             "password", "bad_credentials", ctx)
            failure = Unauthorized(*BAD_CREDENTIALS)
        else:
            if passwords.needs_rehash(stored, settings.argon2):
                repo.set_password_hash(cur, account["id"],
                                       off_loop(passwords.hash_password, password, settings.argon2))
            codes.check_send_budget(cur, account["phone"])
            login_id = uuid.uuid4()
            code, code_hash = codes.new_code(login_id)
            repo.insert_login(cur, login_id, account["id"], "password", code_hash,
                              now() + dt.timedelta(seconds=settings.otp_ttl_s), client_ip(context))
    if failure is not None:
        raise failure
    sent = codes.send(adapters.sms, account["phone"], code, settings.otp_ttl_s)
    return {"login_id": str(login_id), "next": "otp", **sent}


def confirm(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
            context: dict | None, ctx: EventContext) -> dict:
    """Check the sign-in's one-time code; on success issue the tokens."""
    data = load(LoginConfirmBody, raw)
    failure: ServiceError | None = None
    with db.transaction() as cur:
        row = repo.login(cur, data["login_id"])
        if row is None or row["method"] != "password":
            raise NotFound("login_not_found", "No pending sign-in has this id.")
        account = repo.account_by_id(cur, row["account_id"], for_update=True)  # waits for a disable
        refuse_if_locked(cur, str(account["id"]), source_key(context))
        failure = codes.verify(cur, "logins", row, data["otp"], settings.otp_attempts)
        if failure is not None:
            if failure.code == "otp_invalid":
                register_failure(cur, store, settings, str(account["id"]), str(account["id"]), context,
                                 "password", "bad_otp", ctx)
        elif account["status"] != "active":
            failure = Unauthorized(*BAD_CREDENTIALS)
        else:
            repo.finish(cur, "logins", row["id"])
            result = sessions.issue(cur, key, settings, account)
            succeeded(cur, store, account, "password", context, ctx)
    if failure is not None:
        raise failure
    return result
