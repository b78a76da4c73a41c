"""Staff credentials for local development and tests: an access token for an agency officer,
an agency system, an editor or an operator, with no real staff account behind it.

Issued only while the local stand-ins are configured (``LOCAL_ADAPTERS``); each (role,
agency) pair gets one stable account so its actions are attributed consistently.
"""

from __future__ import annotations

import uuid
import zlib

from portal_common.contracts.identity import DevTokenBody
from portal_common.db import Database
from portal_common.errors import NotFound
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.common import load, record
from services.identity.domain import tokens
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings

NAMES = {"officer": "Cán bộ một cửa (thử nghiệm)", "agency_system": "Hệ thống một cửa (thử nghiệm)",
         "editor": "Biên tập viên (thử nghiệm)", "operator": "Vận hành viên (thử nghiệm)"}


def dev_token(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
              ctx: EventContext) -> dict:
    if not settings.local_adapters:
        raise NotFound("not_found", "Not found.")
    data = load(DevTokenBody, raw)
    role, agency = data["role"], data.get("agency_code")
    identifier = f"staff:{role}:{agency or '-'}"
    with db.transaction() as cur:
        account = repo.staff_account(cur, identifier)
        if account is None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(identifier.encode()),))
            account = repo.staff_account(cur, identifier)
        if account is None:
            account = {"id": str(uuid.uuid4()), "role": role, "identifier": identifier, "agency_code": agency,
                       "full_name": NAMES[role], "methods": ["dev"]}
            repo.insert_account(cur, account)
            record(store, cur, f"account-{account['id']}", [NewEvent("StaffCredentialIssued", {
                "account_id": account["id"], "role": role, "agency_code": agency})], ctx)
    token, _ = tokens.access_token(key, account, settings.dev_token_ttl_s)
    return {"access_token": token, "token_type": "Bearer", "expires_in": settings.dev_token_ttl_s,
            "account_id": str(account["id"]), "role": role, "agency_code": agency}
