"""The platform's checksum: HMAC-SHA512 over the sorted fields with the merchant secret.

As the national platform and VNPay-style gateways do: every ``vnp_`` field except the hash
itself, sorted by name, URL-encoded as ``name=value`` joined by ``&``, then HMAC-SHA512 with
the merchant secret, hex. A notification verifies under the current secret or, while the
merchant switches, the previous one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus

HASH_FIELD = "vnp_SecureHash"
_EXCLUDED = {HASH_FIELD, "vnp_SecureHashType"}


def canonical(fields: Mapping[str, str]) -> str:
    """The signed text of ``fields`` (the hash fields left out)."""
    return "&".join(f"{k}={quote_plus(str(v))}" for k, v in sorted(fields.items())
                    if k.startswith("vnp_") and k not in _EXCLUDED and v not in (None, ""))


def sign(fields: Mapping[str, str], secret: str) -> str:
    return hmac.new(secret.encode(), canonical(fields).encode(), hashlib.sha512).hexdigest()


def signed(fields: Mapping[str, str], secret: str) -> dict[str, str]:
    """``fields`` with their checksum added."""
    return {**fields, HASH_FIELD: sign(fields, secret)}


def verify(fields: Mapping[str, str], secrets: Iterable[str]) -> bool:
    """Whether the checksum is right under one of ``secrets`` (constant-time compare)."""
    given = str(fields.get(HASH_FIELD) or "").lower()
    if not given:
        return False
    ok = False
    for secret in secrets:
        if secret:
            ok |= hmac.compare_digest(sign(fields, secret), given)
    return ok
