"""Sending a one-time code and checking one, shared by registration and sign-in."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from portal_common import config
from portal_common.contracts.identity import ResendBody
from portal_common.errors import InvalidInput, NotFound, ServiceError, TooManyRequests
from services.identity import repository as repo
from services.identity.adapters import SmsGateway
from services.identity.common import load, now
from services.identity.domain import otp
from services.identity.domain.ids import mask_phone

log = logging.getLogger(__name__)
MAX_CODES_PER_PHONE = config.env_int("OTP_MAX_PER_PHONE", 10, "identity")  # per SENDS_WINDOW
SENDS_WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking a code: ``ok`` or the refusal to raise after committing."""

    ok: bool
    error: ServiceError | None = None
    exhausted: bool = False


def new_code(owner_id: uuid.UUID) -> tuple[str, bytes]:
    code = otp.new_code()
    return code, otp.code_hash(str(owner_id), code)


def send(sms: SmsGateway, phone: str, code: str, ttl_s: int) -> dict:
    sms.send(phone, otp.sms_text(code, max(1, ttl_s // 60)))
    log.info("one-time code sent", extra={"to": mask_phone(phone)})
    return {"otp_sent_to": mask_phone(phone), "expires_in": ttl_s}


def check_send_budget(cur, phone: str) -> None:
    """Refuse when this number already got many codes lately (no SMS bombing)."""
    cur.execute(
        "SELECT (SELECT coalesce(sum(sends), 0) FROM registrations WHERE phone = %s AND created_at > now() - %s) + "
        "(SELECT coalesce(sum(l.sends), 0) FROM logins l JOIN accounts a ON a.id = l.account_id "
        " WHERE a.phone = %s AND l.created_at > now() - %s) AS n",
        (phone, SENDS_WINDOW, phone, SENDS_WINDOW),
    )
    if cur.fetchone()["n"] >= MAX_CODES_PER_PHONE:
        raise TooManyRequests("otp_rate_limited", "Too many codes were sent to this number; try again later.",
                              {"retry_after": int(SENDS_WINDOW.total_seconds())})


def check(row: dict, code: str, max_attempts: int, now: dt.datetime) -> CodeCheck:
    """Check ``code`` against a pending registration / sign-in row (expiry, attempts, value)."""
    if row["status"] == "done":
        return CodeCheck(False, ServiceError("otp_used", "This code was already used; start again."))
    if row["status"] == "failed" or row["attempts"] >= max_attempts:
        return CodeCheck(False, ServiceError("otp_exhausted", "Too many wrong codes; start again."))
    if row["otp_expires_at"] <= now:
        return CodeCheck(False, ServiceError("otp_expired", "The one-time code has expired; start again."))
    if not otp.matches(str(row["id"]), code, row["otp_hash"]):
        left = max_attempts - row["attempts"] - 1
        return CodeCheck(False, ServiceError("otp_invalid", "The one-time code is wrong.",
                                             {"attempts_left": left}), exhausted=left <= 0)
    return CodeCheck(True)


def verify(cur, table: str, row: dict, code: str, max_attempts: int) -> ServiceError | None:
    """Check ``code`` against the locked pending ``row`` of ``table`` (``registrations`` or
    ``logins``); a wrong code counts an attempt, and the last allowed one closes the row. The
    refusal, or None when the code is right."""
    outcome = check(row, code, max_attempts, now())
    if outcome.ok:
        return None
    if outcome.error.code == "otp_invalid":
        repo.count_attempt(cur, table, row["id"], failed=outcome.exhausted)
    return outcome.error


def resend(db, sms: SmsGateway, ttl_s: int, raw: dict) -> dict:
    """A new code for a pending registration or sign-in (the old one stops working)."""
    data = load(ResendBody, raw)
    if bool(data.get("registration_id")) == bool(data.get("login_id")):
        raise InvalidInput("validation_failed", "Give either registration_id or login_id.")
    table, row_id = (("registrations", data["registration_id"]) if data.get("registration_id")
                     else ("logins", data["login_id"]))
    with db.transaction() as cur:
        if table == "registrations":
            cur.execute("SELECT id, status, phone FROM registrations WHERE id = %s FOR UPDATE", (str(row_id),))
        else:
            cur.execute("SELECT l.id, l.status, a.phone FROM logins l JOIN accounts a ON a.id = l.account_id "
                        "WHERE l.id = %s FOR UPDATE OF l", (str(row_id),))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"{table[:-1]}_not_found", "Nothing pending has this id.")
        if row["status"] == "done":
            raise ServiceError("otp_used", "This step is finished; start again.")
        check_send_budget(cur, row["phone"])
        code, code_hash = new_code(row["id"])
        cur.execute(f"UPDATE {table} SET otp_hash = %s, otp_expires_at = %s, attempts = 0, status = 'pending', "
                    "sends = sends + 1 WHERE id = %s",
                    (code_hash, now() + dt.timedelta(seconds=ttl_s), str(row["id"])))
    return send(sms, row["phone"], code, ttl_s)
