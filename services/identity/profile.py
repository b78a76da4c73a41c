"""The signed-in account as its owner sees it (``GET /api/v1/me``)."""

from __future__ import annotations

from portal_common.db import Database
from portal_common.errors import NotFound
from services.identity import repository as repo
from services.identity.common import is_uuid


def me(db: Database, account_id: str) -> dict:
    if not is_uuid(account_id):
        raise NotFound("account_not_found", "No account has this id.")
    with db.transaction() as cur:
        account = repo.account_by_id(cur, account_id)
    if account is None:
        raise NotFound("account_not_found", "No account has this id.")
    dob = account["date_of_birth"]
    out = {
        "account_id": str(account["id"]), "role": account["role"], "identifier": account["identifier"],
        "full_name": account["full_name"], "date_of_birth": dob.isoformat() if dob else None,
        "gender": account["gender"], "phone": account["phone"], "agency_code": account["agency_code"],
        "methods": list(account["methods"] or []), "status": account["status"],
        "created_at": account["created_at"].isoformat(),
    }
    if account["role"] == "citizen":
        out.update(cccd=account["identifier"], old_id_number=account["legacy_id"], bhxh_code=account["bhxh_code"])
    if account["role"] == "business":
        out.update(tax_code=account["identifier"], representative_cccd=account["representative_cccd"])
    return out
