"""Local verification of identity's access tokens against its published key set.

Contract with the identity service (see services/identity): access tokens are JWTs signed
with an asymmetric key named by the ``kid`` header; ``identity.jwks()`` over RPC returns the
public key set ``{"keys": [JWK, ...]}``. Claims: ``sub`` (account id), ``role``, ``idn``
(CCCD or tax code), ``agency`` (for officers and agency systems), ``jti``, ``iss``,
``aud``, ``iat``, ``exp``.
"""

from __future__ import annotations

import threading
import time

import jwt
from nameko.extensions import SharedExtension
from nameko.standalone.rpc import ClusterRpcProxy

from gateway.http.auth import ROLES, Principal
from portal_common.errors import Unauthorized

ISSUER = "portal-identity"
AUDIENCE = "portal"
ALGORITHMS = ["EdDSA", "ES256", "RS256"]
REFRESH_AT_MOST_EVERY_S = 10.0


class KeySet:
    """The public keys, by key id; refetched when a token names an unknown one."""

    def __init__(self, fetch):
        self._fetch = fetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def load(self, jwks: dict) -> None:
        keys = {}
        for data in jwks.get("keys", []):
            try:
                keys[data["kid"]] = jwt.PyJWK(data)
            except (KeyError, jwt.PyJWKError):
                continue
        self._keys = keys
        self._fetched_at = time.monotonic()

    def key(self, kid: str) -> jwt.PyJWK | None:
        if kid not in self._keys and time.monotonic() - self._fetched_at > REFRESH_AT_MOST_EVERY_S:
            with self._lock:
                if kid not in self._keys:
                    self.load(self._fetch())
        return self._keys.get(kid)

    def verify(self, token: str) -> Principal:
        """Return the principal a valid token names, or raise ``Unauthorized``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("invalid_token", "The access token is malformed.") from None
        kid = header.get("kid")
        key = self.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("invalid_token", "The access token's key is unknown.")
        try:
            claims = jwt.decode(
                token, key=key, algorithms=ALGORITHMS, audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti"]}, leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token_expired", "The access token has expired.") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid_token", "The access token is not valid.") from None
        if claims.get("typ") not in (None, "access") or claims.get("role") not in ROLES:
            raise Unauthorized("invalid_token", "The access token is not valid.")
        return Principal(
            account_id=str(claims["sub"]), role=claims["role"], subject=str(claims.get("idn", "")),
            agency_code=claims.get("agency"), token_id=claims.get("jti"), claims=claims,
        )


class TokenKeys(SharedExtension):
    """The gateway's copy of identity's key set (one per gateway process)."""

    def setup(self) -> None:
        config = self.container.config
        self.keyset = KeySet(lambda: self._fetch_jwks(config))

    @staticmethod
    def _fetch_jwks(config: dict) -> dict:
        with ClusterRpcProxy(config, timeout=5) as cluster:
            return cluster.identity.jwks()

    def authenticate(self, authorization: str | None) -> Principal:
        """Check an ``Authorization: Bearer ...`` header value."""
        if not authorization:
            raise Unauthorized("unauthorized", "Sign-in required.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or len(token) > 8192:
            raise Unauthorized("invalid_token", "Use 'Authorization: Bearer <access token>'.")
        return self.keyset.verify(token.strip())
