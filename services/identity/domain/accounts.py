"""Accounts (pure): the roles and what each may do, the identifiers staff and resets use, the
citizen an accepted registration creates, and the views of an account its owner and operators
see."""

from __future__ import annotations

import uuid
from typing import Any

from portal_common.errors import InvalidInput, NotFound
from portal_common.eventstore.events import NewEvent
from services.identity.domain import ids

STAFF_ROLES = ("officer", "editor", "operator")
CITIZEN_ROLES = ("citizen", "business")  # who signs in with an ID number
PASSWORD_ROLES = ("citizen", "business", "officer", "editor", "operator")  # may change or reset a password
NO_STAFF = ("staff_not_found", "No staff account has this id.")
NO_ACCOUNT = ("account_not_found", "No account has this id.")


def staff_identifier(username: str) -> str:
    return f"staff:{username}"


def username(account: dict) -> str:
    return account["identifier"].removeprefix("staff:")


def reset_identifier(value: str) -> str:
    """What a password reset names: an ID number as it is, anything else a staff username."""
    return value if value.isdigit() else staff_identifier(value)


def personal_values(account: dict) -> tuple[str, ...]:
    """What a password of ``account`` must not contain."""
    return account["identifier"].removeprefix("staff:"), account["phone"] or "", account["legacy_id"] or ""


def staff_id(account_id: Any) -> uuid.UUID:
    """The id as a UUID; anything else is an unknown account, like any id no staff account has."""
    try:
        return uuid.UUID(str(account_id))
    except ValueError:
        raise NotFound(*NO_STAFF) from None


def is_uuid(value: Any) -> bool:
    """Whether ``value`` reads as a UUID: an account id that does not is unknown, not an error."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def require_found(account: dict | None) -> dict:
    """``account``, or ``account_not_found`` when there is none."""
    if account is None:
        raise NotFound(*NO_ACCOUNT)
    return account


def require_account_id(account_id: Any) -> str:
    """An id that can name an account; anything else is an account not found."""
    if not is_uuid(account_id):
        raise NotFound(*NO_ACCOUNT)
    return str(account_id)


def citizen(account_id: str, method: str, person: dict) -> dict:
    """The account row of a citizen whose registration (``person``: its stored data) was confirmed."""
    return {
        "id": account_id, "role": "citizen", "identifier": person["cccd"], "legacy_id": person.get("legacy_id"),
        "full_name": person["full_name"], "date_of_birth": person["date_of_birth"], "gender": person["gender"],
        "phone": person["phone"], "bhxh_code": person.get("bhxh_code"), "password_hash": person["password_hash"],
        "methods": [method, "password"],
    }


def citizen_registered(account_id: str, method: str, person: dict) -> list[NewEvent]:
    """The events of a confirmed registration: who registered, and the two proofs it took."""
    return [
        NewEvent("CitizenRegistered", {
            "account_id": account_id, "cccd": person["cccd"], "full_name": person["full_name"],
            "date_of_birth": person["date_of_birth"], "gender": person["gender"], "phone": person["phone"],
            "method": method}),
        NewEvent("AccountVerified", {"account_id": account_id, "method": "carrier" if method == "mobile" else "bhxh",
                                     "detail": person.get("carrier") if method == "mobile" else None}),
        NewEvent("AccountVerified", {"account_id": account_id, "method": "sms", "detail": None}),
    ]


def certificate_holder(account_id: str, facts: Any, data: dict, phone: str | None) -> tuple[dict, NewEvent]:
    """The account row and the registration event of a certificate's holder (``facts``:
    ``certificates.CertificateFacts``); a business names its legal representative's CCCD."""
    account = {"id": account_id, "role": facts.kind, "identifier": facts.identifier, "phone": phone,
               "certificate_fingerprint": facts.fingerprint, "methods": ["certificate"]}
    if facts.kind == "business":
        name = data.get("business_name") or facts.organization or facts.common_name
        rep = data.get("representative_cccd")
        if not rep or not ids.is_cccd(rep):
            raise InvalidInput("invalid_cccd", "A business needs its legal representative's CCCD (12 digits).",
                               [{"field": "representative_cccd", "message": "A valid CCCD is required."}])
        account.update(full_name=ids.clean_name(name)[:200], representative_cccd=rep)
        return account, NewEvent("BusinessRegistered", {
            "account_id": account_id, "tax_code": facts.identifier, "name": account["full_name"],
            "representative_cccd": rep, "method": "certificate", "certificate_kind": data["certificate_kind"]})
    _, gender = ids.cccd_birth(facts.identifier)
    account.update(full_name=ids.clean_name(data.get("full_name") or facts.common_name)[:100], gender=gender)
    return account, NewEvent("CitizenRegistered", {
        "account_id": account_id, "cccd": facts.identifier, "full_name": account["full_name"],
        "gender": gender, "phone": phone, "method": "certificate", "certificate_kind": data["certificate_kind"]})


def staff_status_event(event_type: str, account: dict, reason: str) -> NewEvent:
    """``StaffAccountDisabled`` or ``StaffAccountReinstated``."""
    return NewEvent(event_type, {
        "account_id": str(account["id"]), "username": username(account), "role": account["role"],
        "agency_code": account["agency_code"], "reason": reason})


def profile(account: dict) -> dict:
    """The account as its owner sees it (``GET /api/v1/me``)."""
    dob = account["date_of_birth"]
    out = {
        "account_id": str(account["id"]), "role": account["role"], "identifier": account["identifier"],
        "full_name": account["full_name"], "date_of_birth": dob.isoformat() if dob else None,
        "gender": account["gender"], "phone": account["phone"], "agency_code": account["agency_code"],
        "methods": list(account["methods"] or []), "status": account["status"],
        "created_at": account["created_at"].isoformat(),
        "assurance_level": account.get("assurance_level"),  # of the last sign-in with VNeID
    }
    if account["role"] == "citizen":
        out.update(cccd=account["identifier"], old_id_number=account["legacy_id"], bhxh_code=account["bhxh_code"])
    if account["role"] == "business":
        out.update(tax_code=account["identifier"], representative_cccd=account["representative_cccd"])
    return out


def staff_item(row: dict) -> dict:
    """A staff account as operators list it."""
    return {"account_id": str(row["id"]), "username": username(row), "role": row["role"],
            "full_name": row["full_name"], "agency_code": row["agency_code"], "status": row["status"],
            "created_at": row["created_at"].isoformat(),
            "disabled_at": row["disabled_at"].isoformat() if row["disabled_at"] else None}
