"""Sending a one-time code and checking one, shared by registration, sign-in, password reset
and staff activation; and ``resend``, a new code for a pending step."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from portal_common.contracts.identity import ResendBody
from portal_common.db import Database
from portal_common.errors import InvalidInput, NotFound, ServiceError, TooManyRequests
from services.identity import repository as repo
from services.identity.adapters import SmsGateway
from services.identity.application.shared import load, now
from services.identity.domain import otp
from services.identity.domain.ids import mask_phone
from services.identity.settings import OTP_MAX_PER_PHONE

log = logging.getLogger(__name__)
SENDS_WINDOW = dt.timedelta(minutes=15)  # at most OTP_MAX_PER_PHONE codes to a number within it


def new_code(owner_id: uuid.UUID) -> tuple[str, bytes]:
    code = otp.new_code()
    return code, otp.code_hash(str(owner_id), code)


def send(sms: SmsGateway, phone: str, code: str, ttl_s: int) -> dict:
    sms.send(phone, otp.sms_text(code, max(1, ttl_s // 60)))
    log.info("one-time code sent", extra={"to": mask_phone(phone)})
    return {"otp_sent_to": mask_phone(phone), "expires_in": ttl_s}


def check_send_budget(cur, phone: str) -> None:
    """Refuse when this number already got many codes lately (no SMS bombing)."""
    if repo.codes_sent_lately(cur, phone, SENDS_WINDOW) >= OTP_MAX_PER_PHONE:
        raise TooManyRequests("otp_rate_limited", "Too many codes were sent to this number; try again later.",
                              {"retry_after": int(SENDS_WINDOW.total_seconds())})


def verify(cur, table: str, row: dict, code: str, max_attempts: int) -> ServiceError | None:
    """Check ``code`` against the locked pending ``row`` of ``table`` (``registrations`` or
    ``logins``); a wrong code counts an attempt, and the last allowed one closes the row. The
    refusal, or None when the code is right."""
    outcome = otp.check(row, code, max_attempts, now())
    if outcome.ok:
        return None
    if outcome.error.code == "otp_invalid":
        repo.count_attempt(cur, table, row["id"], failed=outcome.exhausted)
    return outcome.error


def resend(db: Database, sms: SmsGateway, ttl_s: int, raw: dict) -> dict:
    """A new code for a pending registration or sign-in (the old one stops working)."""
    data = load(ResendBody, raw)
    if bool(data.get("registration_id")) == bool(data.get("login_id")):
        raise InvalidInput("validation_failed", "Give either registration_id or login_id.")
    table, row_id = (("registrations", data["registration_id"]) if data.get("registration_id")
                     else ("logins", data["login_id"]))
    with db.transaction() as cur:
        row = repo.pending_for_resend(cur, table, row_id)
        if row is None:
            raise NotFound(f"{table[:-1]}_not_found", "Nothing pending has this id.")
        if row["status"] == "done":
            raise ServiceError("otp_used", "This step is finished; start again.")
        check_send_budget(cur, row["phone"])
        code, code_hash = new_code(row["id"])
        repo.replace_code(cur, table, row["id"], code_hash, now() + dt.timedelta(seconds=ttl_s))
    return send(sms, row["phone"], code, ttl_s)
