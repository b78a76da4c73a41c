"""Access tokens (short-lived EdDSA JWTs naming their key) and refresh tokens (opaque).

The claims are the gateway's contract (gateway/http/tokens.py): ``sub`` the account id,
``role``, ``idn`` (CCCD, tax code or staff identifier), ``agency`` (officers and agency
systems), ``sid`` (the session, i.e. the refresh-token family, when the token has one: the
gateway refuses the tokens of a revoked session), ``acr`` (the assurance level, "1" or "2", of
the VNeID sign-in the session began with; absent for other ways in), ``jti``, ``iss``, ``aud``, ``iat``, ``exp``
and ``typ="access"``.

A refresh token is ``<id>.<secret>``: the id finds the row, and only a SHA-256 of the secret
is stored, so a copy of the database cannot be turned into sessions. An agency system's client
secret is kept the same way. Signing keys are Ed25519, published as JWKs named by their RFC 7638
thumbprint, and stored as PKCS#8 PEM (encrypted when a passphrase is given).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "portal-identity"
AUDIENCE = "portal"
ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey


def access_token(key: SigningKey, account: dict, ttl_seconds: int, now: float | None = None,
                 session_id: str | None = None, acr: int | None = None) -> tuple[str, dict]:
    """Sign an access token for ``account`` (id, role, identifier, agency_code), naming its
    session when it belongs to one."""
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": str(account["id"]),
        "role": account["role"],
        "idn": account["identifier"],
        "jti": uuid.uuid4().hex,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + int(ttl_seconds),
        "typ": "access",
    }
    if account.get("agency_code"):
        claims["agency"] = account["agency_code"]
    if session_id:
        claims["sid"] = str(session_id)
    if acr:  # the VNeID level the session began with
        claims["acr"] = str(acr)
    token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
    return token, claims


def new_refresh_token() -> tuple[uuid.UUID, str, bytes]:
    """A fresh refresh token: (row id, the token to hand out, the hash to store)."""
    token_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    return token_id, f"{token_id.hex}.{secret}", refresh_hash(secret)


def refresh_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_refresh_token(token: str) -> tuple[uuid.UUID, str] | None:
    """Split a presented refresh token; None when it cannot be one of ours."""
    if not isinstance(token, str) or len(token) > 200 or "." not in token:
        return None
    head, _, secret = token.partition(".")
    try:
        token_id = uuid.UUID(hex=head)
    except ValueError:
        return None
    return (token_id, secret) if secret else None


def refresh_matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(refresh_hash(secret), bytes(stored))


# -- client credentials of agency systems ----------------------------------------------------

_NO_CLIENT = hashlib.sha256(b"no such client").digest()


def new_client_credentials() -> tuple[str, str]:
    """A client id and a 256-bit random secret (shown once; only its hash is kept)."""
    return f"as_{secrets.token_hex(12)}", secrets.token_urlsafe(32)


def client_secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def client_secret_matches(secret: str, stored: bytes | None) -> bool:
    """Compared against a dummy when the client is unknown, so both answers take as long."""
    return hmac.compare_digest(client_secret_hash(secret), bytes(stored) if stored is not None else _NO_CLIENT)


# -- signing keys -------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: Ed25519PrivateKey, kid: str) -> dict:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": kid, "alg": ALGORITHM, "use": "sig"}


def thumbprint(key: Ed25519PrivateKey) -> str:
    """RFC 7638 thumbprint of the public key: a stable key id."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())[:16]


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def key_to_pem(key: Ed25519PrivateKey, passphrase: bytes | None) -> str:
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def key_from_pem(pem: str, passphrase: bytes | None) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the configured signing key must be an Ed25519 private key")
    return key
