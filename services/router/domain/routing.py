"""Where a dossier event goes: the agency it names (or the dossier's holder), followed along
successors of dissolved agencies; the delivery's deterministic id, its body and the queue
names of an agency."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from portal_common.contracts.dossier import national_status_code
from services.router.domain.subscriptions import status_after

DEFAULT_CHANNEL = "amqp"
DELIVERY_NAMESPACE = uuid.UUID("6f1c2b9e-3d4a-4f0e-9a51-2d7c8e4b1a60")
# Dossier events an agency back office is told about (beside submission and hand-over).
FOLLOW_UP_EVENTS = ("DossierSupplemented", "DossierWithdrawn", "FeeExemptionDeclared", "FeeExemptionDisputed")
ROUTED_EVENTS = ("DossierSubmitted", "DossierForwarded", *FOLLOW_UP_EVENTS)


class RoutingError(ValueError):
    """The event cannot be routed (no agency named, a successor loop)."""


@dataclass(frozen=True)
class Route:
    """How one agency receives deliveries."""

    agency_code: str
    channel: str = DEFAULT_CHANNEL
    endpoint: str | None = None
    secret_ref: str | None = None
    active: bool = True


def delivery_id(event_id: str | uuid.UUID, agency_code: str) -> uuid.UUID:
    """Deterministic: the same dossier event for the same agency is always the same delivery."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}:{agency_code}")


def resolve_successor(code: str, successors: dict[str, str | None]) -> str:
    """Follow dissolved agencies to the active one at the end of the chain."""
    seen = [code]
    current = code
    while successors.get(current):
        current = successors[current]  # type: ignore[assignment]
        if current in seen:
            raise RoutingError(f"successor loop: {' -> '.join([*seen, current])}")
        seen.append(current)
    return current


def _code(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict):
        return _code(value.get("code"))
    return None


def dossier_code(data: dict[str, Any]) -> str:
    code = _code(data.get("code")) or _code(data.get("dossier_code"))
    if not code:
        raise RoutingError("the event names no dossier code")
    return code


def addressed_agency(event_type: str, data: dict[str, Any], current: str | None) -> str:
    """Which agency a dossier event is for, before successors are applied.

    Submission names the agency (``agency.code`` or ``agency_code``); a hand-over names the
    target (``to_agency.code`` or ``to_agency_code``); later events go to the agency that
    holds the dossier now (``current``) unless they name one.
    """
    if event_type == "DossierForwarded":
        code = _code(data.get("to_agency")) or _code(data.get("to_agency_code"))
    elif event_type == "DossierSubmitted":
        code = _code(data.get("agency")) or _code(data.get("agency_code"))
    else:
        code = _code(data.get("agency_code")) or current
    if not code:
        raise RoutingError(f"{event_type}: no agency to deliver to")
    return code


def recipients(event_type: str, data: dict[str, Any], holder: str | None,
               successors: dict[str, str | None]) -> list[tuple[str, str]]:
    """``(receiving agency, agency the event named)`` pairs, the dossier's holder first.

    A hand-over (liên thông) also goes back to the agency that passed the dossier on, so both
    back offices see the chain.
    """
    addressed = addressed_agency(event_type, data, holder)
    result = [(resolve_successor(addressed, successors), addressed)]
    origin = _code(data.get("from_agency_code")) if event_type == "DossierForwarded" else None
    if origin:
        receiving = resolve_successor(origin, successors)
        if receiving != result[0][0]:
            result.append((receiving, origin))
    return result


def routing_key(agency_code: str, event_type: str) -> str:
    """``agency.<code>.dossier.<event>``, e.g. ``agency.SOTP-HN.dossier.submitted``."""
    short = event_type[len("Dossier"):] if event_type.startswith("Dossier") else event_type
    return f"agency.{agency_code}.dossier.{short.lower()}"


def queue_name(agency_code: str) -> str:
    return f"agency.{agency_code}"


def delivery_body(
    delivery: uuid.UUID | str, agency_code: str, addressed_to: str, envelope: dict[str, Any],
    chain: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What an agency system receives on either channel.

    ``chain`` (liên thông): the next procedure the result feeds and the agency that
    implements it for the applicant's place, when the catalog names one; the receiving
    agency hands the dossier on there (``forward``) once its part is done. ``status`` is the
    dossier's status after the event and ``national_status_code`` the national portal's
    code of it (added beside the fields agencies already read).
    """
    status = status_after(str(envelope["event_type"]), None, envelope)
    return {
        "chain": chain,
        "status": status,
        "national_status_code": national_status_code(status),
        "delivery_id": str(delivery),
        "agency_code": agency_code,
        "addressed_to": addressed_to,
        "event_id": str(envelope["event_id"]),
        "event_type": envelope["event_type"],
        "schema_version": envelope.get("schema_version"),
        "dossier_code": dossier_code(envelope.get("data") or {}),
        "occurred_at": envelope.get("occurred_at"),
        "correlation_id": envelope.get("correlation_id"),
        "data": envelope.get("data") or {},
    }
