"""Sessions: issuing an access token with a refresh token, rotating refresh tokens (a reused
one ends the whole session), and signing out.

A session is a refresh-token family; its access tokens carry its id as ``sid``. Every way a
session ends (sign-out, sign-out everywhere, reuse of a rotated refresh token, a disabled
account, a password change or reset) publishes ``SignedOut`` (``domain/sessions.py``), and
``revocations`` lists the recent ones, so the gateway refuses their access tokens at once."""

from __future__ import annotations

import datetime as dt
import uuid

from portal_common.contracts.identity import LogoutBody, RefreshBody
from portal_common.db import Database
from portal_common.errors import Unauthorized
from portal_common.eventstore import EventContext, EventStore
from services.identity import repository as repo
from services.identity.application.shared import load, now, record
from services.identity.domain import sessions as domain_sessions
from services.identity.domain import tokens
from services.identity.domain.sessions import signed_out
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings


def issue(cur, key: SigningKey, settings: Settings, account: dict, family: uuid.UUID | None = None,
          assurance_level: int | None = None) -> dict:
    """An access token and a refresh token for ``account`` (inside the caller's transaction);
    ``assurance_level``: the VNeID level the session began with (its tokens carry it as ``acr``)."""
    token_id, refresh, refresh_hash = tokens.new_refresh_token()
    family = family or token_id
    access, _ = tokens.access_token(key, account, settings.access_ttl_s, session_id=str(family),
                                    acr=assurance_level)
    repo.insert_refresh(cur, token_id, family, account["id"], refresh_hash,
                        now() + dt.timedelta(seconds=settings.refresh_ttl_s), assurance_level)
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
        account = repo.account_by_id(cur, row["account_id"], for_update=True)  # waits for a disable
        if row["revoked_at"] is not None:
            if row["revoked_reason"] == "rotated" and repo.revoke_family(cur, row["family"], "reuse") > 0:
                record(store, cur, f"account-{row['account_id']}", [signed_out(
                    row["account_id"], "refresh_reuse", [row["family"]])], ctx)
            failure = Unauthorized("refresh_token_revoked", "The refresh token was revoked; sign in again.")
        elif row["expires_at"] <= now():
            failure = Unauthorized("refresh_token_expired", "The refresh token has expired; sign in again.")
        elif account is None or account["status"] != "active":
            if repo.revoke_family(cur, row["family"], "account_disabled") > 0:
                record(store, cur, f"account-{row['account_id']}", [signed_out(
                    row["account_id"], "account_disabled", [row["family"]])], ctx)
            failure = invalid
        else:
            repo.revoke_refresh(cur, token_id, "rotated")
            result = issue(cur, key, settings, account, family=row["family"],
                           assurance_level=row.get("assurance_level"))
    if failure is not None:
        raise failure
    return result


def logout(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext,
           session_id: str | None = None) -> dict:
    """Revoke the session of the given refresh token (or every session) of the caller; with
    neither, the session of the access token the caller signed out with (``session_id``)."""
    data = load(LogoutBody, raw or {})
    revoked, ended = 0, []
    with db.transaction() as cur:
        if data["everywhere"]:
            ended = repo.revoke_account_session_ids(cur, account_id, "logout")
            revoked = len(ended)
        else:
            family = None
            if data.get("refresh_token"):
                parsed = tokens.parse_refresh_token(data["refresh_token"])
                row = repo.refresh_row(cur, parsed[0]) if parsed else None
                if row is not None and str(row["account_id"]) == str(account_id) and tokens.refresh_matches(
                        parsed[1], row["token_hash"]):
                    family = row["family"]
            elif session_id:
                family = _own_session(cur, account_id, session_id)
            if family is not None:
                revoked = repo.revoke_family(cur, family, "logout")
                ended = [family]
        if revoked:
            record(store, cur, f"account-{account_id}",
                   [signed_out(account_id, "logout", ended, all_sessions=bool(data["everywhere"]))], ctx)
    return {"revoked_sessions": revoked}


def _own_session(cur, account_id: str, session_id: str) -> uuid.UUID | None:
    try:
        family = uuid.UUID(str(session_id))
    except ValueError:
        return None
    return family if repo.session_of(cur, account_id, family) else None


def revocations(db: Database, settings: Settings) -> dict:
    """What the gateway must refuse now: the sessions and accounts revoked within one access-token
    lifetime (and a margin), for a gateway that starts after the events went by."""
    window = settings.access_ttl_s + 60
    with db.transaction() as cur:
        rows = repo.revoked_sessions_since(cur, window)
        clients = repo.revoked_agency_clients_since(cur, window)
        disabled = repo.disabled_staff_since(cur, window)
    return domain_sessions.revocations(rows, disabled, clients, settings.access_ttl_s)
