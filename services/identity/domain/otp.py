"""One-time codes: six random digits, stored only as a keyed hash, single use, expiring,
with a limited number of attempts."""

from __future__ import annotations

import hashlib
import hmac
import secrets

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
