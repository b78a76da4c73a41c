"""The signed-in account as its owner sees it (``GET /api/v1/me``)."""

from __future__ import annotations

from portal_common.db import Database
from services.identity import repository as repo
from services.identity.domain import accounts


def me(db: Database, account_id: str) -> dict:
    accounts.require_account_id(account_id)
    with db.transaction() as cur:
        account = accounts.require_found(repo.account_by_id(cur, account_id))
    return accounts.profile(account)
