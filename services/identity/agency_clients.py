"""Client credentials for agency back-office systems.

An operator registers a system for one agency and gets a client id and secret, shown once;
only a SHA-256 of the (256-bit random) secret is kept. The system trades them for a
short-lived access token with role ``agency_system`` scoped to its agency
(``POST /api/v1/auth/token``); revoking the client stops new tokens at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from portal_common.contracts.identity import ClientCredentialsBody, NewAgencySystemBody
from portal_common.db import Database
from portal_common.errors import NotFound, Unauthorized
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import signin
from services.identity.common import load, record
from services.identity.domain import tokens
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings

_BAD = ("invalid_client", "The client id or secret is not right, or the client was revoked.")
_DUMMY = hashlib.sha256(b"no such client").digest()


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def register(db: Database, store: EventStore, raw: dict, ctx: EventContext) -> dict:
    data = load(NewAgencySystemBody, raw)
    account_id = str(uuid.uuid4())
    client_id = f"as_{secrets.token_hex(12)}"
    secret = secrets.token_urlsafe(32)
    with db.transaction() as cur:
        cur.execute("INSERT INTO accounts (id, role, identifier, full_name, agency_code, methods) "
                    "VALUES (%s, 'agency_system', %s, %s, %s, '{client_credentials}')",
                    (account_id, f"client:{client_id}", data["name"], data["agency_code"]))
        cur.execute("INSERT INTO agency_clients (client_id, account_id, agency_code, name, secret_hash) "
                    "VALUES (%s, %s, %s, %s, %s)", (client_id, account_id, data["agency_code"], data["name"],
                                                    _hash(secret)))
        record(store, cur, f"account-{account_id}", [NewEvent("AgencySystemRegistered", {
            "account_id": account_id, "client_id": client_id, "agency_code": data["agency_code"],
            "name": data["name"]})], ctx)
    return {"client_id": client_id, "client_secret": secret, "agency_code": data["agency_code"],
            "account_id": account_id, "name": data["name"]}


def revoke(db: Database, store: EventStore, client_id: str, ctx: EventContext) -> dict:
    with db.transaction() as cur:
        cur.execute("UPDATE agency_clients SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL "
                    "RETURNING account_id, agency_code", (str(client_id)[:100],))
        row = cur.fetchone()
        if row is None:
            raise NotFound("client_not_found", "No active agency system has this client id.")
        cur.execute("UPDATE accounts SET status = 'disabled', updated_at = now() WHERE id = %s",
                    (str(row["account_id"]),))
        record(store, cur, f"account-{row['account_id']}", [NewEvent("AgencySystemRevoked", {
            "account_id": str(row["account_id"]), "client_id": client_id, "agency_code": row["agency_code"]})], ctx)
    return {"client_id": client_id, "status": "revoked"}


def token(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
          context: dict | None, ctx: EventContext) -> dict:
    data = load(ClientCredentialsBody, raw)
    source = signin.source_key(context)
    with db.transaction() as cur:
        signin.refuse_if_locked(cur, None, source)
        cur.execute("SELECT c.secret_hash, c.revoked_at, a.* FROM agency_clients c JOIN accounts a "
                    "ON a.id = c.account_id WHERE c.client_id = %s", (data["client_id"],))
        row = cur.fetchone()
        good = hmac.compare_digest(_hash(data["client_secret"]), bytes(row["secret_hash"]) if row else _DUMMY)
        if not (good and row and row["revoked_at"] is None and row["status"] == "active"):
            signin.register_failure(cur, store, settings, None, str(row["id"]) if row else None, context,
                                    "password", "bad_credentials", ctx)
            failure = Unauthorized(*_BAD)
        else:
            failure = None
    if failure is not None:
        raise failure
    access, _ = tokens.access_token(key, row, settings.access_ttl_s)
    return {"access_token": access, "token_type": "Bearer", "expires_in": settings.access_ttl_s,
            "account_id": str(row["id"]), "role": "agency_system", "agency_code": row["agency_code"]}
