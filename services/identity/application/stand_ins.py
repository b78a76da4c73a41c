"""The local stand-ins' side in identity, refused (``not_found``) unless ``LOCAL_ADAPTERS`` is on:
fill the local carrier and social-insurance registries, read the local SMS outbox, trust a test
certificate authority, and issue staff credentials with no real staff account behind them.

A dev token is an access token for an agency officer, an agency system, an editor or an
operator; each (role, agency) pair gets one stable account so its actions are attributed
consistently.
"""

from __future__ import annotations

import uuid

from portal_common.contracts.identity import BhxhRecordBody, CarrierRecordBody, DevTokenBody, TrustedCaBody
from portal_common.db import Database
from portal_common.errors import NotFound
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity.adapters import Adapters
from services.identity.adapters.local import (
    LocalCarrierRegistry,
    LocalSmsGateway,
    LocalSocialInsuranceRegistry,
)
from services.identity.application import pki
from services.identity.application.shared import load, record
from services.identity.domain import ids, tokens
from services.identity.domain.tokens import SigningKey
from services.identity.settings import Settings

NAMES = {"officer": "Cán bộ một cửa (thử nghiệm)", "agency_system": "Hệ thống một cửa (thử nghiệm)",
         "editor": "Biên tập viên (thử nghiệm)", "operator": "Vận hành viên (thử nghiệm)"}


def _require_local_adapters(settings: Settings) -> None:
    if not settings.local_adapters:
        raise NotFound("not_found", "Not found.")


def _require_local(settings: Settings, adapter, kind: type):
    if not settings.local_adapters or not isinstance(adapter, kind):
        raise NotFound("not_found", "Not found.")
    return adapter


def carrier_record(settings: Settings, adapters: Adapters, raw: dict) -> dict:
    registry = _require_local(settings, adapters.carrier, LocalCarrierRegistry)
    data = load(CarrierRecordBody, raw)
    phone, cccd = ids.require_phone(data["phone"]), ids.require_cccd(data["cccd"])
    registry.put(phone, cccd, data["carrier"])
    return {"phone": phone, "cccd": cccd, "carrier": data["carrier"]}


def bhxh_record(settings: Settings, adapters: Adapters, raw: dict) -> dict:
    registry = _require_local(settings, adapters.social_insurance, LocalSocialInsuranceRegistry)
    data = load(BhxhRecordBody, raw)
    ids.require_bhxh_code(data["bhxh_code"])
    cccd = ids.require_cccd(data["cccd"])
    registry.put(data["bhxh_code"], cccd, data["full_name"], data["date_of_birth"])
    return {"bhxh_code": data["bhxh_code"], "cccd": cccd, "full_name": data["full_name"],
            "date_of_birth": data["date_of_birth"].isoformat()}


def sms_outbox(settings: Settings, adapters: Adapters, phone: str | None, limit: int = 50) -> dict:
    gateway = _require_local(settings, adapters.sms, LocalSmsGateway)
    if phone:
        phone = ids.require_phone(phone)
    limit = max(1, min(int(limit or 50), 200))
    return {"items": gateway.messages(phone, limit)}


def trusted_ca(settings: Settings, db: Database, raw: dict, store: EventStore | None = None,
               ctx: EventContext | None = None) -> dict:
    """Trust a test certificate authority (development and tests only)."""
    _require_local_adapters(settings)
    data = load(TrustedCaBody, raw)
    return pki.add_trusted_ca(db, store or EventStore(db), data["certificate_pem"], ctx or EventContext())


def dev_token(db: Database, store: EventStore, key: SigningKey, settings: Settings, raw: dict,
              ctx: EventContext) -> dict:
    """An access token for a staff role (and agency), its stable account made on first use."""
    _require_local_adapters(settings)
    data = load(DevTokenBody, raw)
    role, agency = data["role"], data.get("agency_code")
    identifier = f"staff:{role}:{agency or '-'}"
    with db.transaction() as cur:
        account = repo.staff_account(cur, identifier)
        if account is None:
            repo.lock_identifier(cur, identifier)
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
