"""The Ed25519 keys that sign deliveries, and the detached JWS anyone can check them with.

The current key is the secret ``AGENCY_SECRET_DELIVERY_KEY`` (a PKCS#8 PEM), the key being
retired ``AGENCY_SECRET_DELIVERY_KEY_PREVIOUS``; both are read through ``SecretStore`` (a
file in ``AGENCY_SECRETS_DIR`` wins over the variable, and a changed file is read again), so a
rotation needs no restart. Deliveries are signed with the current key; the published key set
(``GET /api/v1/agency/delivery-keys``) lists both while the previous one exists, so a
delivery signed just before the rotation still verifies after it. ``kid`` is the key's
RFC 7638 thumbprint.

``Portal-Signature-JWS`` is a compact JWS with detached payload (RFC 7515 appendix F):
``BASE64URL(header) + ".." + BASE64URL(signature)``, header ``{"alg": "EdDSA", "kid": ...}``,
signing input ``BASE64URL(header) + "." + BASE64URL(body bytes)``.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from services.router.secrets import SecretStore

KEY_REF = "AGENCY_SECRET_DELIVERY_KEY"
HEADER = "Portal-Signature-JWS"
ALG = "EdDSA"


class NoDeliveryKey(Exception):
    """No signing key is configured (``AGENCY_SECRET_DELIVERY_KEY``)."""


def _quiet(func, *args, **kwargs):
    # RFC 9864 deprecates the "EdDSA" name in favour of "Ed25519"; the published contract
    # (API.md) fixes "EdDSA", so joserfc's warning about it is silenced here only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def load_private(pem: str) -> OKPKey:
    key = OKPKey.import_key(pem)
    if key.curve_name != "Ed25519" or not key.is_private:
        raise ValueError("a delivery key must be an Ed25519 private key")
    return key


def generate_pem() -> str:
    """A new Ed25519 private key as PKCS#8 PEM (for ``make up`` and tests)."""
    return OKPKey.generate_key("Ed25519").as_pem(private=True).decode()


def public_jwk(key: OKPKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": ALG, "use": "sig"}


def sign_detached(key: OKPKey, body: bytes) -> str:
    token = _quiet(jws.serialize_compact, {"alg": ALG, "kid": key.thumbprint()}, body, key,
                   algorithms=[ALG])
    header, _, signature = token.split(".")
    return f"{header}..{signature}"


def verify_detached(value: str, body: bytes, jwks: dict[str, Any]) -> str:
    """The ``kid`` that signed ``body``; ``ValueError`` when the signature does not verify with
    any published key (or names none)."""
    parts = (value or "").strip().split(".")
    if len(parts) != 3 or parts[1] != "":
        raise ValueError("not a compact JWS with detached payload")
    try:
        key_set = KeySet.import_key_set(jwks)
        result = _quiet(jws.deserialize_compact, value.strip(), key_set, algorithms=[ALG], payload=body)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"the signature does not verify: {type(exc).__name__}") from None
    if result.headers().get("alg") != ALG:
        raise ValueError("unexpected algorithm")
    return str(result.headers().get("kid"))


class DeliveryKeys:
    """The current and previous signing keys, parsed once per distinct PEM."""

    def __init__(self, secrets: SecretStore):
        self.secrets = secrets
        self._parsed: dict[str, OKPKey] = {}
        self._lock = threading.Lock()

    def _key(self, pem: str | None) -> OKPKey | None:
        if not pem:
            return None
        with self._lock:
            key = self._parsed.get(pem)
            if key is None:
                key = load_private(pem.replace("\\n", "\n"))
                self._parsed = {pem: key, **dict(list(self._parsed.items())[-3:])}
            return key

    def current(self) -> OKPKey:
        key = self._key(self.secrets.get(KEY_REF))
        if key is None:
            raise NoDeliveryKey("no delivery signing key is configured (AGENCY_SECRET_DELIVERY_KEY)")
        return key

    def jwks(self) -> dict[str, Any]:
        current, previous = self.secrets.pair(KEY_REF)
        keys = [self._key(pem) for pem in (current, previous)]
        return {"keys": [public_jwk(k) for k in keys if k is not None]}

    def sign(self, body: bytes) -> str:
        return sign_detached(self.current(), body)
