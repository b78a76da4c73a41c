"""Checking the router's ``Portal-Signature-JWS`` on callbacks and queue messages.

The header is a compact JWS with detached payload (RFC 7515 appendix F, ``alg: EdDSA``):
``BASE64URL(header) + ".." + BASE64URL(signature)``, signed over
``BASE64URL(header) + "." + BASE64URL(body bytes)``. The public keys are the JWKS at
``<gateway>/api/v1/agency/delivery-keys``; they rotate with an overlap, so a key id this
back office has not seen yet makes it fetch the set again (at most every ``refresh_s``).
Unlike the HMAC secret, nobody but the portal can make these signatures, and anyone can
check them later.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

HEADER = "Portal-Signature-JWS"


class JwsError(Exception):
    """Why a delivery's JWS was rejected."""


def _kid(value: str) -> str | None:
    try:
        header, _, _ = value.split(".")
        padded = header + "=" * (-len(header) % 4)
        return json.loads(base64.urlsafe_b64decode(padded)).get("kid")
    except (ValueError, AttributeError):
        return None


class DeliveryKeys:
    def __init__(self, jwks_url: str, refresh_s: float = 30.0, fetch: Any = None):
        self.jwks_url = jwks_url
        self.refresh_s = refresh_s
        self._fetch = fetch or self._get
        self._jwks: dict[str, Any] = {"keys": []}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _get(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.jwks_url, timeout=10) as resp:  # noqa: S310 - the gateway's URL
            return json.loads(resp.read())

    def _keys_for(self, kid: str | None) -> dict[str, Any]:
        with self._lock:
            known = {k.get("kid") for k in self._jwks.get("keys", [])}
            if (kid not in known and time.monotonic() - self._fetched_at >= self.refresh_s) or not self._fetched_at:
                try:
                    self._jwks = self._fetch()
                except (OSError, ValueError) as exc:
                    raise JwsError(f"cannot fetch the delivery keys: {exc}") from None
                self._fetched_at = time.monotonic()
            return self._jwks

    def verify(self, value: str | None, body: bytes) -> str:
        """The key id that signed ``body``; ``JwsError`` when the header is missing or wrong."""
        if not value:
            raise JwsError(f"missing {HEADER} header")
        parts = value.strip().split(".")
        if len(parts) != 3 or parts[1]:
            raise JwsError("not a compact JWS with detached payload")
        jwks = self._keys_for(_kid(value))
        try:
            with warnings.catch_warnings():  # the contract fixes "EdDSA", which RFC 9864 deprecates
                warnings.simplefilter("ignore")
                result = jws.deserialize_compact(value.strip(), KeySet.import_key_set(jwks), algorithms=["EdDSA"],
                                                 payload=body)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise JwsError(f"the signature does not verify ({type(exc).__name__})") from None
        return str(result.headers().get("kid"))
