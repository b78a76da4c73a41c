"""The rules of agency subscriptions, pure: which channels an event belongs to, the status a
dossier is in after an event, whether a feed entry matches a subscription's filters, whether a
callback address may be called, and the CloudEvent attributes of a feed entry."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from portal_common.contracts.dossier import STATUSES, national_status_code

CHANNEL_NAMES = ("dossiers", "payments", "documents")
FILTER_KEYS = ("procedure_code", "field", "event_type", "status", "province_code")
CLOUDEVENT_SOURCE = "/portal/dossier"
TYPE_PREFIX = "vn.gov.portal."

# The status a dossier is in after each event that changes it; other events leave it as it is
# (pause, resume, extension, overdue; a payment received hands the dossier back to processing).
STATUS_AFTER: dict[str, str] = {
    "DossierSubmitted": "submitted",
    "DossierReceived": "received",
    "DossierRefused": "refused",
    "DossierProcessingStarted": "processing",
    "SupplementRequested": "supplement_requested",
    "DossierSupplemented": "supplemented",
    "DossierForwarded": "forwarded",
    "DossierResultReady": "result_ready",
    "DossierResultReturned": "returned",
    "DossierRejected": "rejected",
    "DossierWithdrawn": "withdrawn",
    "DossierPaymentRequested": "awaiting_payment",
    "DossierPaymentExpired": "payment_expired",
    "DossierPaymentReceived": "processing",
}
# Fee exemptions (declared at filing, disputed by the agency) are payment matters; they leave the
# status as it is (a dispute's DossierPaymentRequested moves it).
PAYMENT_EVENTS = ("FeeExemptionDeclared", "FeeExemptionDisputed")
# Events that carry documents (inputs or results) also go to the ``documents`` channel.
DOCUMENT_EVENTS = ("DossierSubmitted", "DossierSupplemented", "DossierResultReady", "DossierReceiptAttached")


class FilterError(ValueError):
    """A subscription's channels or filters are not valid (field -> messages)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(str(errors))
        self.errors = errors


def channels_of(event_type: str) -> list[str]:
    """The channels an event is published on: payments for payment events, documents for
    events that carry documents, dossiers for every other dossier event."""
    payment = "Payment" in event_type or "Receipt" in event_type or event_type in PAYMENT_EVENTS
    result = ["payments"] if payment else ["dossiers"]
    if event_type in DOCUMENT_EVENTS or "Document" in event_type:
        result.append("documents")
    return result


def status_after(event_type: str, before: str | None, envelope: Mapping[str, Any] | None = None) -> str | None:
    """The dossier's status after an event: as its producer stated it in the envelope's
    ``attributes`` (events published since they carry it), else inferred from the event type."""
    stated = (envelope or {}).get("attributes") or {}
    if isinstance(stated, Mapping) and stated.get("dossier_status") in STATUSES:
        return stated["dossier_status"]
    return STATUS_AFTER.get(event_type, before)


def normalize_filters(filters: Any) -> dict[str, list[str]]:
    """``{key: value | [values]}`` with known keys only, as ``{key: sorted unique values}``;
    an empty value list is dropped (an empty filter means all)."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise FilterError({"filters": ["an object of attribute -> value or list of values"]})
    errors: dict[str, list[str]] = {}
    result: dict[str, list[str]] = {}
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            errors[str(key)[:64]] = [f"unknown filter; use one of {', '.join(FILTER_KEYS)}"]
            continue
        values = [value] if isinstance(value, str | int) and not isinstance(value, bool) else value
        if not isinstance(values, list) or len(values) > 100 or not all(
                isinstance(v, str | int) and not isinstance(v, bool) and 0 < len(str(v)) <= 100
                and str(v).isprintable() for v in values):
            errors[key] = ["a value or a list of at most 100 values of 1 to 100 printable characters"]
            continue
        if values:
            result[key] = sorted({str(v) for v in values})
    if errors:
        raise FilterError(errors)
    return result


def normalize_channels(channels: Any) -> list[str]:
    if not isinstance(channels, list) or not channels or not all(c in CHANNEL_NAMES for c in channels):
        raise FilterError({"channels": [f"a non-empty list of {', '.join(CHANNEL_NAMES)}"]})
    return sorted(set(channels))


def matches(channels: Iterable[str], filters: Mapping[str, list[str]], entry: Mapping[str, Any]) -> bool:
    """Whether a feed entry (already the subscribing agency's own) goes to a subscription."""
    if not set(channels) & set(entry.get("channels") or ()):
        return False
    for key, allowed in filters.items():
        value = entry.get(key)
        if value is None or str(value) not in allowed:
            return False
    return True


def failing(failing_for_s: Any, alert_after_s: float) -> bool:
    """Whether a subscription has kept failing long enough to alert an operator."""
    return failing_for_s is not None and float(failing_for_s) > 0 and float(failing_for_s) >= alert_after_s


# -- callback addresses -------------------------------------------------------------------------


def refused_address(address: str, allow_loopback: bool, allow_private: bool) -> str | None:
    """Why a callback may not connect to ``address`` (an IP literal), or None when it may.

    Loopback, link-local (cloud metadata lives there), private, shared, multicast, reserved
    and unspecified addresses are refused unless the operator allows loopback / private ones;
    an IPv4 address mapped into IPv6 is judged as the IPv4 address it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_unspecified or ip.is_reserved:
        return "reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")):
        return None if allow_private else "private address"
    if not ip.is_global:
        return "non-global address"
    return None


def refused_url_scheme(scheme: str, host: str | None, https_only: bool) -> str | None:
    """Why a callback URL's scheme or host is refused before any lookup."""
    if scheme not in ("http", "https"):
        return "only http(s) callbacks"
    if https_only and scheme != "https":
        return "callbacks must use https"
    if not host:
        return "the URL names no host"
    return None


# -- CloudEvents ----------------------------------------------------------------------------------


def cloudevent_type(event_type: str, schema_version: int | None) -> str:
    """``vn.gov.portal.<EventType>.v<n>``: the message of that name and version in /asyncapi.json."""
    return f"{TYPE_PREFIX}{event_type}.v{schema_version or 1}"


def cloudevent_attributes(envelope: Mapping[str, Any], agency_code: str, attrs: Mapping[str, Any],
                          schema_base: str) -> dict[str, Any]:
    """The context attributes of the CloudEvent of one dossier event for one agency.

    ``id`` is the event id (a consumer drops duplicates by it); ``dataschema`` points at the
    event's message in the AsyncAPI document; the extensions carry what subscriptions filter
    on, the dossier's status after the event and its national status code."""
    version = envelope.get("schema_version") or 1
    status = attrs.get("status")
    extensions = {
        "agencycode": agency_code,
        "dossiercode": attrs.get("dossier_code"),
        "procedurecode": attrs.get("procedure_code"),
        "field": attrs.get("field"),
        "provincecode": attrs.get("province_code"),
        "dossierstatus": status,
        "nationalstatuscode": national_status_code(status),
        "dossierversion": envelope.get("stream_version"),
    }
    result = {
        "specversion": "1.0",
        "id": str(envelope["event_id"]),
        "source": CLOUDEVENT_SOURCE,
        "type": cloudevent_type(str(envelope["event_type"]), version),
        "subject": attrs.get("dossier_code"),
        "time": envelope.get("occurred_at"),
        "datacontenttype": "application/json",
        "dataschema": f"{schema_base.rstrip('/')}/asyncapi.json#/components/messages/"
                      f"{envelope['event_type']}.v{version}",
    }
    result.update({k: v for k, v in extensions.items() if v is not None})
    return result


def delivery_attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """CloudEvent context attributes of a route delivery (binary mode: its body is the data).

    ``id`` is the dossier event's id (unique on one agency's queue); ``deliveryid`` the
    delivery's own, which the agency acknowledges."""
    body = row.get("body") if isinstance(row.get("body"), Mapping) else {}
    result = {
        "specversion": "1.0",
        "id": str(row["event_id"]),
        "source": CLOUDEVENT_SOURCE,
        "type": cloudevent_type(str(row["event_type"]), body.get("schema_version")),
        "subject": row.get("dossier_code"),
        "time": body.get("occurred_at"),
        "datacontenttype": "application/json",
        "deliveryid": str(row["delivery_id"]),
        "agencycode": row.get("agency_code"),
        "dossierstatus": body.get("status"),
        "nationalstatuscode": body.get("national_status_code"),
    }
    return {k: v for k, v in result.items() if v is not None}
