"""Sign-in with CCCD (or an old 9-digit CMT) + password, then a one-time code to the
account's phone; lockout with back-off per account and per source address.

No answer tells an unknown ID number from a wrong password: both are ``invalid_credentials``
after the same Argon2 work, and failures for an identifier no account has are counted and
locked exactly like an account's.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid

from portal_common.contracts.identity import LoginBody, LoginConfirmBody
from portal_common.db import Database
from portal_common.errors import InvalidInput, NotFound, ServiceError, TooManyRequests, Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import otp_flow, sessions
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.common import client_ip, load, now, off_loop, record
from services.identity.domain import ids, lockout, passwords
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings

log = logging.getLogger(__name__)
FAILURE_WINDOW = dt.timedelta(minutes=15)  # failures older than this are forgotten
BAD_CREDENTIALS = ("invalid_credentials", "The ID number, password or code is not right.")


def _state(row: dict | None) -> lockout.FailureState | None:
    if row is None:
        return None
    return lockout.FailureState(row["failures"], row["lockouts"], row["locked_until"])


def source_key(context: dict | None) -> str:
    return client_ip(context) or "unknown"


def source_exempt(settings: Settings, source: str) -> bool:
    """True for addresses configured as exempt from per-source lockout (SOURCE_LOCKOUT_EXEMPT)."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    for network in settings.source_lockout_exempt:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def _locked(cur, scope: str, key: str) -> int | None:
    return lockout.retry_after(_state(repo.failure_state(cur, scope, key)), now())


def refuse_if_locked(cur, account_key: str | None, source: str | None) -> None:
    """Raise 429 ``signin_locked`` when the account (or identifier) or the source is locked
    (pass ``source=None`` for an address exempt from per-source lockout)."""
    wait = max(filter(None, [_locked(cur, "source", source) if source else None,
                             _locked(cur, "account", account_key) if account_key else None]), default=None)
    if wait:
        raise TooManyRequests("signin_locked", "Too many failed sign-ins; try again later.",
                              {"retry_after": wait})


def _fail_one(cur, store, scope: str, key: str, policy: lockout.LockoutPolicy, account_id: str | None,
              client: str | None, ctx: EventContext) -> None:
    row = repo.failure_state(cur, scope, key, for_update=True)
    state = _state(row) or lockout.FailureState(0, 0, None)
    if row is not None and row["last_failure_at"] < now() - FAILURE_WINDOW:
        state = lockout.FailureState(0, state.lockouts, state.locked_until)  # old failures are forgotten
    after = lockout.after_failure(state, policy, now())
    repo.save_failure_state(cur, scope, key, after.failures, after.lockouts, after.locked_until)
    if after.lockouts > state.lockouts:
        log.warning("sign-in locked", extra={"scope": scope, "lockouts": after.lockouts})
        stream = f"account-{account_id}" if scope == "account" and account_id else f"signin-{key}"[:200]
        record(store, cur, stream, [NewEvent("AccountLocked", {
            "scope": scope, "account_id": account_id if scope == "account" else None, "client_ip": client,
            "locked_until": after.locked_until.isoformat(), "lockouts": after.lockouts})], ctx)


def register_failure(cur, store: EventStore, settings: Settings, account_key: str | None,
                     account_id: str | None, context: dict | None, method: str, reason: str,
                     ctx: EventContext) -> None:
    """Count a failure for the account (or identifier) and the source; lock at the threshold."""
    client = client_ip(context)
    stream = f"account-{account_id}" if account_id else f"signin-{source_key(context)}"[:200]
    record(store, cur, stream, [NewEvent("SignInFailed", {
        "account_id": account_id, "method": method, "reason": reason, "client_ip": client})], ctx)
    if account_key:
        _fail_one(cur, store, "account", account_key, settings.account_lockout, account_id, client, ctx)
    if not source_exempt(settings, source_key(context)):
        _fail_one(cur, store, "source", source_key(context), settings.source_lockout, account_id, client, ctx)


def succeeded(cur, store: EventStore, account: dict, method: str, context: dict | None, ctx: EventContext) -> None:
    repo.clear_failures(cur, "account", str(account["id"]))
    record(store, cur, f"account-{account['id']}", [NewEvent("SignInSucceeded", {
        "account_id": str(account["id"]), "role": account["role"], "method": method,
        "client_ip": client_ip(context)})], ctx)


def start_password(db: Database, store: EventStore, adapters: Adapters, settings: Settings, raw: dict,
                   context: dict | None, ctx: EventContext) -> dict:
    """Check the password; on success send a one-time code to the account's phone."""
    data = load(LoginBody, raw)
    if data["method"] != "password":
        raise InvalidInput("validation_failed", "Use the certificate sign-in for method=certificate.")
    identifier = data["cccd"]
    if not (ids.is_cmt(identifier) or ids.cccd_problem(identifier) is None):
        raise InvalidInput("invalid_id_number", "Sign in with a 12-digit CCCD or a 9-digit old ID card number.",
                           [{"field": "cccd", "message": "Not a CCCD or CMT number."}])
    return password_step(db, store, adapters, settings, identifier, data["password"], ("citizen", "business"),
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
    good = off_loop(passwords.verify_password, stored, password)
    good = good and account is not None and account["status"] == "active" and bool(account["phone"])
    failure = None
    with db.transaction() as cur:
        if not good:
            register_failure(cur, store, settings, key, str(account["id"]) if account else None, context,
                             "password", "bad_credentials", ctx)
            failure = Unauthorized(*BAD_CREDENTIALS)
        else:
            if passwords.needs_rehash(stored):
                repo.set_password_hash(cur, account["id"], off_loop(passwords.hash_password, password))
            otp_flow.check_send_budget(cur, account["phone"])
            login_id = uuid.uuid4()
            code, code_hash = otp_flow.new_code(login_id)
            repo.insert_login(cur, login_id, account["id"], "password", code_hash,
                              now() + dt.timedelta(seconds=settings.otp_ttl_s), client_ip(context))
    if failure is not None:
        raise failure
    sent = otp_flow.send(adapters.sms, account["phone"], code, settings.otp_ttl_s)
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
        failure = otp_flow.verify(cur, "logins", row, data["otp"], settings.otp_attempts)
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
