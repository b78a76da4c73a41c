"""One-time codes: six random digits, stored only as a keyed hash, single use, expiring,
with a limited number of attempts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from portal_common.errors import ServiceError

DIGITS = 6


def new_code() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def code_hash(owner_id: str, code: str) -> bytes:
    """Bound to the registration / sign-in it belongs to, so a hash is useless elsewhere."""
    return hmac.new(str(owner_id).encode(), str(code).encode(), hashlib.sha256).digest()


def matches(owner_id: str, code: str, stored: bytes) -> bool:
    return hmac.compare_digest(code_hash(owner_id, code), bytes(stored))


def sms_text(code: str, minutes: int) -> str:
    return (f"Ma xac thuc Cong Dich vu cong cua ban la {code}. Ma het han sau {minutes} phut. "
            "Khong chia se ma nay cho bat ky ai.")


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking a code: ``ok`` or the refusal to raise after committing."""

    ok: bool
    error: ServiceError | None = None
    exhausted: bool = False


def check(row: dict, code: str, max_attempts: int, now: dt.datetime) -> CodeCheck:
    """Check ``code`` against a pending registration / sign-in row (expiry, attempts, value)."""
    if row["status"] == "done":
        return CodeCheck(False, ServiceError("otp_used", "This code was already used; start again."))
    if row["status"] == "failed" or row["attempts"] >= max_attempts:
        return CodeCheck(False, ServiceError("otp_exhausted", "Too many wrong codes; start again."))
    if row["otp_expires_at"] <= now:
        return CodeCheck(False, ServiceError("otp_expired", "The one-time code has expired; start again."))
    if not matches(str(row["id"]), code, row["otp_hash"]):
        left = max_attempts - row["attempts"] - 1
        return CodeCheck(False, ServiceError("otp_invalid", "The one-time code is wrong.",
                                             {"attempts_left": left}), exhausted=left <= 0)
    return CodeCheck(True)
