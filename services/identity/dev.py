"""The dev endpoints' side in identity: fill the local carrier and social-insurance
registries, read the local SMS outbox. Refused unless the local stand-ins are configured."""

from __future__ import annotations

from portal_common.contracts.identity import BhxhRecordBody, CarrierRecordBody, TrustedCaBody
from portal_common.errors import InvalidInput, NotFound
from portal_common.eventstore import EventContext, EventStore
from services.identity import certificate
from services.identity.adapters import Adapters
from services.identity.adapters.local import (
    LocalCarrierRegistry,
    LocalSmsGateway,
    LocalSocialInsuranceRegistry,
)
from services.identity.common import load
from services.identity.domain import ids
from services.identity.settings import Settings


def _require_local(settings: Settings, adapter, kind: type):
    if not settings.local_adapters or not isinstance(adapter, kind):
        raise NotFound("not_found", "Not found.")
    return adapter


def _phone(value: str) -> str:
    phone = ids.normalize_phone(value)
    if phone is None:
        raise InvalidInput("invalid_phone", "Not a Vietnamese mobile number.",
                           [{"field": "phone", "message": "Not a Vietnamese mobile number."}])
    return phone


def _cccd(value: str) -> str:
    problem = ids.cccd_problem(value)
    if problem is not None:
        raise InvalidInput(problem.code, problem.message, [{"field": "cccd", "message": problem.message}])
    return value


def carrier_record(settings: Settings, adapters: Adapters, raw: dict) -> dict:
    registry = _require_local(settings, adapters.carrier, LocalCarrierRegistry)
    data = load(CarrierRecordBody, raw)
    phone, cccd = _phone(data["phone"]), _cccd(data["cccd"])
    registry.put(phone, cccd, data["carrier"])
    return {"phone": phone, "cccd": cccd, "carrier": data["carrier"]}


def bhxh_record(settings: Settings, adapters: Adapters, raw: dict) -> dict:
    registry = _require_local(settings, adapters.social_insurance, LocalSocialInsuranceRegistry)
    data = load(BhxhRecordBody, raw)
    if not ids.is_bhxh_code(data["bhxh_code"]):
        raise InvalidInput("invalid_bhxh_code", "A social-insurance (BHXH) code has 10 digits.",
                           [{"field": "bhxh_code", "message": "A social-insurance (BHXH) code has 10 digits."}])
    cccd = _cccd(data["cccd"])
    registry.put(data["bhxh_code"], cccd, data["full_name"], data["date_of_birth"])
    return {"bhxh_code": data["bhxh_code"], "cccd": cccd, "full_name": data["full_name"],
            "date_of_birth": data["date_of_birth"].isoformat()}


def sms_outbox(settings: Settings, adapters: Adapters, phone: str | None, limit: int = 50) -> dict:
    gateway = _require_local(settings, adapters.sms, LocalSmsGateway)
    if phone:
        phone = _phone(phone)
    limit = max(1, min(int(limit or 50), 200))
    return {"items": gateway.messages(phone, limit)}


def trusted_ca(settings: Settings, db, raw: dict, store: EventStore | None = None,
               ctx: EventContext | None = None) -> dict:
    """Trust a test certificate authority (development and tests only)."""
    if not settings.local_adapters:
        raise NotFound("not_found", "Not found.")
    data = load(TrustedCaBody, raw)
    return certificate.add_trusted_ca(db, store or EventStore(db), data["certificate_pem"], ctx or EventContext())
