"""Access tokens (short-lived EdDSA JWTs naming their key) and refresh tokens (opaque).

The claims are the gateway's contract (gateway/http/tokens.py): ``sub`` the account id,
``role``, ``idn`` (CCCD, tax code or staff identifier), ``agency`` (officers and agency
systems), ``sid`` (the session, i.e. the refresh-token family, when the token has one: the
gateway refuses the tokens of a revoked session), ``jti``, ``iss``, ``aud``, ``iat``, ``exp``
and ``typ="access"``.

A refresh token is ``<id>.<secret>``: the id finds the row, and only a SHA-256 of the secret
is stored, so a copy of the database cannot be turned into sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "portal-identity"
AUDIENCE = "portal"
ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey


def access_token(key: SigningKey, account: dict, ttl_seconds: int, now: float | None = None,
                 session_id: str | None = None) -> tuple[str, dict]:
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
