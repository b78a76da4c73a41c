"""Sign-in attempts, whatever the method: refusing while locked, counting a failure per
account (or typed identifier) and per source address with the lockout it may start, and
recording a success. Called inside the caller's transaction.

Failures for an identifier no account has are counted and locked exactly like an account's,
so no answer tells an unknown ID number from a wrong password.
"""

from __future__ import annotations

import logging

from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.application.shared import client_ip, now, record
from services.identity.domain import lockout
from services.identity.settings import Settings

log = logging.getLogger(__name__)
BAD_CREDENTIALS = ("invalid_credentials", "The ID number, password or code is not right.")


def _state(row: dict | None) -> lockout.FailureState | None:
    if row is None:
        return None
    return lockout.FailureState(row["failures"], row["lockouts"], row["locked_until"])


def source_key(context: dict | None) -> str:
    return lockout.source_key(client_ip(context))


def source_exempt(settings: Settings, source: str) -> bool:
    """True for addresses configured as exempt from per-source lockout (SOURCE_LOCKOUT_EXEMPT)."""
    return lockout.exempt(source, settings.source_lockout_exempt)


def _locked(cur, scope: str, key: str) -> int | None:
    return lockout.retry_after(_state(repo.failure_state(cur, scope, key)), now())


def refuse_if_locked(cur, account_key: str | None, source: str | None) -> None:
    """Raise 429 ``signin_locked`` when the account (or identifier) or the source is locked
    (pass ``source=None`` for an address exempt from per-source lockout)."""
    lockout.refuse_if_locked([_locked(cur, "source", source) if source else None,
                              _locked(cur, "account", account_key) if account_key else None])


def _fail_one(cur, store: EventStore, scope: str, key: str, policy: lockout.LockoutPolicy,
              account_id: str | None, client: str | None, ctx: EventContext) -> None:
    row = repo.failure_state(cur, scope, key, for_update=True)
    state = _state(row) or lockout.FailureState(0, 0, None)
    after = lockout.after_failure(state, policy, now(), row["last_failure_at"] if row else None)
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
