"""Which dossier events an applicant hears about by SMS, and what the message says (pure).

Only the steps that need the applicant or bring news: filed (the code to quote), received
(the appointment date), refused at reception, supplement requested (by when), deadline
extended (the new date), result ready, rejected. Internal steps (processing, pause, resume,
hand-over to another agency, deliveries) would be noise.

The texts are Vietnamese without diacritics: GSM-7 fits 160 characters in one SMS, a single
accented letter switches the message to UCS-2 and 70. They name the dossier code and the new
status and nothing else: no name, no CCCD, and none of the agency's free text (reasons, notes,
the list of missing documents), which may quote personal data; the applicant reads those on
the portal, signed in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from services.identity.domain.ids import mask_phone

SMS_LIMIT = 160
DETAILS = "Xem chi tiet tren Cong dich vu cong."
# a dossier code as the dossier service issues it (``<AGENCY>-<YYMMDD>-<NNNN>``); anything else is not put in an SMS
_CODE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
# the events that name the dossier's owner (account id and kind)
OWNER_EVENTS = frozenset({"DossierSubmitted", "DossierForwarded"})


def _date(value: Any) -> str | None:
    """``31/12/2026`` (the way dates are written in Vietnam) from an ISO date; None when absent or bad."""
    try:
        return dt.date.fromisoformat(str(value)[:10]).strftime("%d/%m/%Y") if value else None
    except ValueError:
        return None


def _submitted(code: str, data: Mapping[str, Any]) -> str:
    return f"Ho so {code} da duoc nop thanh cong, dang cho co quan tiep nhan. {DETAILS}"


def _received(code: str, data: Mapping[str, Any]) -> str:
    day = _date(data.get("appointment_date"))
    when = f" Ngay hen tra ket qua: {day}." if day else ""
    return f"Ho so {code} da duoc tiep nhan.{when} {DETAILS}"


def _refused(code: str, data: Mapping[str, Any]) -> str:
    return f"Ho so {code} bi tu choi tiep nhan. {DETAILS}"


def _supplement(code: str, data: Mapping[str, Any]) -> str:
    day = _date(data.get("due_date"))
    by = f" truoc ngay {day}" if day else ""
    return f"Ho so {code} can bo sung giay to{by}. {DETAILS}"


def _extended(code: str, data: Mapping[str, Any]) -> str:
    day = _date(data.get("new_date"))
    when = f", ngay hen moi: {day}" if day else ""
    return f"Ho so {code} duoc gia han giai quyet{when}. {DETAILS}"


def _result_ready(code: str, data: Mapping[str, Any]) -> str:
    return f"Ho so {code} da co ket qua. {DETAILS}"


def _rejected(code: str, data: Mapping[str, Any]) -> str:
    return f"Ho so {code} khong duoc giai quyet. {DETAILS}"


TEMPLATES: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    "DossierSubmitted": _submitted,
    "DossierReceived": _received,
    "DossierRefused": _refused,
    "SupplementRequested": _supplement,
    "DeadlineExtended": _extended,
    "DossierResultReady": _result_ready,
    "DossierRejected": _rejected,
}
#: the dossier events an applicant is told about
NOTIFYING = frozenset(TEMPLATES)


def sms_text(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The SMS for a dossier event; None when the event does not notify or its code is unusable."""
    template = TEMPLATES.get(event_type)
    code = data.get("code") if isinstance(data, Mapping) else None
    if template is None or not isinstance(code, str) or not _CODE.fullmatch(code):
        return None
    return template(code, data)


def owner_of(event_type: str, data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(account id, kind) of the dossier's owner when the event names it."""
    if event_type not in OWNER_EVENTS or not isinstance(data, Mapping):
        return None
    owner = data.get("owner")
    if not isinstance(owner, Mapping) or not owner.get("account_id"):
        return None
    return str(owner["account_id"]), str(owner.get("kind") or "citizen")


def skip_reason(account: Mapping[str, Any] | None) -> str | None:
    """Why this account gets no SMS (None: it gets one).

    Citizens only: a business account's number is the representative's, and the business
    follows its dossiers on the portal. No phone, no SMS; and the owner may have opted out.
    """
    if account is None:
        return "no_account"
    if account.get("role") != "citizen":
        return "not_citizen"
    if not account.get("phone"):
        return "no_phone"
    if not account.get("notify_sms", True):
        return "opted_out"
    return None


def is_plain_gsm(text: str) -> bool:
    """Printable ASCII only: safe in GSM-7 (no diacritics, nothing that costs two septets)."""
    return all(" " <= c <= "~" and c not in "[]{}\\^~|" for c in text)


def preference_view(account: Mapping[str, Any]) -> dict:
    """The applicant's choice and where SMS go (masked; None when none would be sent)."""
    sends = skip_reason({**account, "notify_sms": True}) is None
    return {"notify_sms": bool(account["notify_sms"]),
            "sms_to": mask_phone(account["phone"]) if sends else None}


def retry_delay(attempts: int) -> float:
    """Seconds before a failed SMS is tried again: 30 s doubling per attempt, at most an hour."""
    return min(30.0 * 2 ** (attempts - 1), 3600.0)
