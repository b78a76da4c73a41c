"""The bytes a delivery is sent as, and the signature of a callback over them.

A signed callback carries ``X-Portal-Timestamp`` (Unix seconds) and ``X-Portal-Signature``:
``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` with the agency's secret. While
a secret is being rotated the header lists one signature per secret, new first,
comma-separated: ``sha256=<with new>,sha256=<with previous>``. A receiver accepts the
callback when any listed signature matches its own secret, so it keeps working whether it
switched before or after the router.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
DELIVERY_HEADER = "X-Portal-Delivery"


def encode_body(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_value(secrets: list[str | bytes], timestamp: int, body: bytes) -> str:
    """The signature header's value: one ``sha256=<hex>`` per secret, comma-separated, in order."""
    if not secrets:
        raise ValueError("signing needs at least one secret")
    return ",".join(sign(secret, timestamp, body) for secret in secrets)


def signed_headers(secret: str | bytes, body: bytes, delivery: str, now: float,
                   previous: str | bytes | None = None) -> dict[str, str]:
    """Headers of a signed callback; ``previous`` (a secret being retired) adds a second signature."""
    timestamp = int(now)
    secrets = [secret] if not previous or previous == secret else [secret, previous]
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_value(secrets, timestamp, body),
        DELIVERY_HEADER: str(delivery),
    }
