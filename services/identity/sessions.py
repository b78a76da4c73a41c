"""Sessions: issuing an access token with a refresh token, rotating refresh tokens (a reused
one ends the whole session), and signing out."""

from __future__ import annotations

import datetime as dt
import uuid

from portal_common.contracts.identity import LogoutBody, RefreshBody
from portal_common.db import Database
from portal_common.errors import Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.common import load, now, record
from services.identity.domain import tokens
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings


def issue(cur, key: SigningKey, settings: Settings, account: dict, family: uuid.UUID | None = None) -> dict:
    """An access token and a refresh token for ``account`` (inside the caller's transaction)."""
    access, _ = tokens.access_token(key, account, settings.access_ttl_s)
    token_id, refresh, refresh_hash = tokens.new_refresh_token()
    repo.insert_refresh(cur, token_id, family or token_id, account["id"], refresh_hash,
                        now() + dt.timedelta(seconds=settings.refresh_ttl_s))
    return {
        "access_token": access, "token_type": "Bearer", "expires_in": settings.access_ttl_s,
        "refresh_token": refresh, "refresh_expires_in": settings.refresh_ttl_s,
        "account_id": str(account["id"]), "role": account["role"],
    }


def refresh(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
            ctx: EventContext) -> dict:
    """Trade a refresh token for new tokens; presenting a replaced one revokes its session."""
    data = load(RefreshBody, raw)
    parsed = tokens.parse_refresh_token(data["refresh_token"])
    invalid = Unauthorized("invalid_refresh_token", "The refresh token is not valid; sign in again.")
    if parsed is None:
        raise invalid
    token_id, secret = parsed
    failure = None
    with db.transaction() as cur:
        row = repo.refresh_row(cur, token_id)
        if row is None or not tokens.refresh_matches(secret, row["token_hash"]):
            raise invalid
        account = repo.account_by_id(cur, row["account_id"])
        if row["revoked_at"] is not None:
            if row["revoked_reason"] == "rotated" and repo.revoke_family(cur, row["family"], "reuse") > 0:
                record(store, cur, f"account-{row['account_id']}", [NewEvent("SignedOut", {
                    "account_id": str(row["account_id"]), "reason": "refresh_reuse"})], ctx)
            failure = Unauthorized("refresh_token_revoked", "The refresh token was revoked; sign in again.")
        elif row["expires_at"] <= now():
            failure = Unauthorized("refresh_token_expired", "The refresh token has expired; sign in again.")
        elif account is None or account["status"] != "active":
            repo.revoke_family(cur, row["family"], "account_disabled")
            failure = invalid
        else:
            repo.revoke_refresh(cur, token_id, "rotated")
            result = issue(cur, key, settings, account, family=row["family"])
    if failure is not None:
        raise failure
    return result


def logout(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext) -> dict:
    """Revoke the session of the given refresh token (or every session) of the caller."""
    data = load(LogoutBody, raw or {})
    revoked = 0
    with db.transaction() as cur:
        if data["everywhere"]:
            revoked = repo.revoke_account_sessions(cur, account_id, "logout")
        elif data.get("refresh_token"):
            parsed = tokens.parse_refresh_token(data["refresh_token"])
            row = repo.refresh_row(cur, parsed[0]) if parsed else None
            if row is not None and str(row["account_id"]) == str(account_id) and tokens.refresh_matches(
                    parsed[1], row["token_hash"]):
                revoked = repo.revoke_family(cur, row["family"], "logout")
        if revoked:
            record(store, cur, f"account-{account_id}",
                   [NewEvent("SignedOut", {"account_id": str(account_id), "reason": "logout"})], ctx)
    return {"revoked_sessions": revoked}
