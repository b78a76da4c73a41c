"""Checking the router's signed callbacks (receivers copy this; it needs only the stdlib).

The router sends ``X-Portal-Timestamp`` (Unix seconds) and ``X-Portal-Signature``
(``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<raw body>`` with the agency's shared
secret). A receiver recomputes it over the bytes it received, compares in constant time, and
rejects timestamps outside its replay window so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
DELIVERY_HEADER = "X-Portal-Delivery"
DEFAULT_WINDOW_S = 300


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
    if not hmac.compare_digest(expected_signature(secret, timestamp, body), signature):
        raise SignatureError("signature does not match")
