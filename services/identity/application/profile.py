"""The signed-in account as its owner sees it (``GET /api/v1/me``)."""

from __future__ import annotations

from portal_common.db import Database
from portal_common.errors import NotFound
from services.identity import repository as repo
from services.identity.domain import accounts


def me(db: Database, account_id: str) -> dict:
    if not accounts.is_uuid(account_id):
        raise NotFound("account_not_found", "No account has this id.")
    with db.transaction() as cur:
        account = repo.account_by_id(cur, account_id)
    if account is None:
        raise NotFound("account_not_found", "No account has this id.")
    return accounts.profile(account)
