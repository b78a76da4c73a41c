"""Checking the router's signed callbacks (receivers copy this; it needs only the stdlib).

The router sends ``X-Portal-Timestamp`` (Unix seconds) and ``X-Portal-Signature``
(``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<raw body>`` with the agency's shared
secret). A receiver recomputes it over the bytes it received, compares in constant time, and
rejects timestamps outside its replay window so a captured request cannot be replayed later.

While the router rotates the secret the header lists several signatures, comma-separated
(``sha256=<new>,sha256=<old>``): accept the callback when any of them matches your secret, so
it does not matter whether you switch to the new secret before or after the router does.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
DELIVERY_HEADER = "X-Portal-Delivery"
DEFAULT_WINDOW_S = 300
MAX_SIGNATURES = 8  # more than a rotation needs; bounds the work a forged header can cause


class SignatureError(Exception):
    """Why a callback was rejected (safe to log: it never includes the secret)."""


def expected_signature(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None, window_s: float = DEFAULT_WINDOW_S) -> None:
    """Raise ``SignatureError`` unless the signature matches and the timestamp is fresh."""
    if not timestamp or not signature:
        raise SignatureError("missing signature or timestamp header")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("malformed timestamp")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window_s:
        raise SignatureError("timestamp outside the replay window")
    expected = expected_signature(secret, timestamp, body).encode()
    # compare every listed signature (no early exit), as bytes: a non-ASCII str would raise
    matches = [hmac.compare_digest(expected, candidate.encode("utf-8", "surrogatepass"))
               for candidate in signatures(signature)]
    if not any(matches):
        raise SignatureError("signature does not match")


def signatures(header: str) -> list[str]:
    """The signatures listed in the header (one, or several during a secret rotation)."""
    listed = [part.strip() for part in header.split(",") if part.strip()]
    if not listed or len(listed) > MAX_SIGNATURES:
        raise SignatureError("malformed signature header")
    return listed
