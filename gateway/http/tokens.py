"""Local verification of identity's access tokens against its published key set.

Contract with the identity service (see services/identity): access tokens are JWTs signed
with an asymmetric key named by the ``kid`` header; ``identity.jwks()`` over RPC returns the
public key set ``{"keys": [JWK, ...]}``. Claims: ``sub`` (account id), ``role``, ``idn``
(CCCD or tax code), ``agency`` (for officers and agency systems), ``sid`` (the session, when
the token belongs to one), ``jti``, ``iss``, ``aud``, ``iat``, ``exp``.

A valid token is still refused (401 ``token_revoked``) when identity has ended its session or
revoked its account since it was issued: see ``gateway.http.revocations``. ``TokenKeys`` holds
the process's revocation list, loaded from ``identity.revocations()`` when the gateway starts
and kept current by ``RevocationFeed`` (identity's events, on a queue of this process's own).
Until that first read has succeeded a signed-in request is answered 503
``revocations_unavailable`` with ``Retry-After``: a gateway that cannot know what was revoked
does not let tokens through (anonymous endpoints keep working).
"""

from __future__ import annotations

import logging
import threading
import time

import eventlet
import eventlet.event
import jwt
from nameko.extensions import DependencyProvider, SharedExtension

from gateway.http.auth import ROLES, Principal
from gateway.http.revocations import RevocationList
from portal_common import config as portal_config
from portal_common.entrypoints import TransientClusterRpcProxy
from portal_common.errors import Unauthorized, Unavailable

log = logging.getLogger(__name__)

ISSUER = "portal-identity"
AUDIENCE = "portal"
ALGORITHMS = ["EdDSA", "ES256", "RS256"]
REFRESH_AT_MOST_EVERY_S = 10.0
REVOCATIONS_RETRY_S = 1.0
# right after start, a token check waits for the first read (this long at most; not at all once it failed)
REVOCATIONS_FIRST_WAIT_S = 5.0
REVOCATIONS_RELOAD_AFTER_S = 5.0  # a second read covers revocations made while the queues were being set up
LEEWAY_S = 5  # clock skew allowed on ``exp`` and ``iat``
# tokens whose signature and claims were checked, kept so that a session's next requests skip
# the signature (EdDSA: about a tenth of a millisecond); bounded, emptied when full
VERIFIED_KEPT = 4096


class KeySet:
    """The public keys, by key id; refetched when a token names an unknown one."""

    def __init__(self, fetch):
        self._fetch = fetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        # token -> (principal, its exp, its kid, the key that verified it); only valid tokens
        self._verified: dict[str, tuple[Principal, float, str, jwt.PyJWK]] = {}

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
        """Return the principal a valid token names, or raise ``Unauthorized``.

        A token verified before is taken from memory while it has not expired and the key
        that verified it is still the published one under its ``kid``; revocation is checked
        by the caller on every request, remembered or not."""
        kept = self._verified.get(token)
        if kept is not None:
            principal, expires, kid, key = kept
            if time.time() <= expires + LEEWAY_S and self._keys.get(kid) is key:
                return principal
            self._verified.pop(token, None)
        principal, kid, key = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[token] = (principal, float(principal.claims["exp"]), kid, key)
        return principal

    def _verify_signed(self, token: str) -> tuple[Principal, str, jwt.PyJWK]:
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
                options={"require": ["exp", "iat", "sub", "jti"]}, leeway=LEEWAY_S,
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
        ), kid, key


class TokenKeys(SharedExtension):
    """The gateway's copy of identity's key set and of its recent revocations (one per gateway
    process)."""

    def setup(self) -> None:
        config = self.container.config
        self.keyset = KeySet(lambda: self._fetch_jwks(config))
        ttl = portal_config.env_float("ACCESS_TOKEN_TTL", 600.0, "gateway")
        self.revocations = RevocationList(ttl)
        self.revocations_loaded = False
        self._loaded = eventlet.event.Event()
        self._wait_until = 0.0
        self._loader = None

    def start(self) -> None:
        self._wait_until = time.monotonic() + REVOCATIONS_FIRST_WAIT_S
        self._loader = eventlet.spawn(self._load_revocations)

    def stop(self) -> None:
        if self._loader is not None:
            self._loader.kill()
            self._loader = None

    def kill(self) -> None:
        self.stop()

    def _load_revocations(self) -> None:
        """Read identity's current revocations (retrying until identity answers), then once more."""
        config, failures = self.container.config, 0
        while True:
            try:
                self.revocations.load(self._fetch_revocations(config))
                break
            except Exception as exc:  # identity may start after the gateway
                failures += 1
                if failures == 1:
                    log.warning("cannot load identity's revocations yet (%s); retrying", exc)
                    self._loaded.send(False)  # token checks stop waiting for it
                eventlet.sleep(REVOCATIONS_RETRY_S)
        self.revocations_loaded = True
        if not self._loaded.ready():
            self._loaded.send(True)
        eventlet.sleep(REVOCATIONS_RELOAD_AFTER_S)
        try:
            self.revocations.load(self._fetch_revocations(config))
        except Exception:  # the events keep it current anyway
            log.warning("second read of identity's revocations failed", exc_info=True)

    @staticmethod
    def _fetch_jwks(config: dict) -> dict:
        with TransientClusterRpcProxy(config, timeout=5) as cluster:
            return cluster.identity.jwks()

    @staticmethod
    def _fetch_revocations(config: dict) -> dict:
        with TransientClusterRpcProxy(config, timeout=5) as cluster:
            return cluster.identity.revocations()

    def authenticate(self, authorization: str | None) -> Principal:
        """Check an ``Authorization: Bearer ...`` header value."""
        if not authorization:
            raise Unauthorized("unauthorized", "Sign-in required.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or len(token) > 8192:
            raise Unauthorized("invalid_token", "Use 'Authorization: Bearer <access token>'.")
        principal = self.keyset.verify(token.strip())
        if not self.revocations_loaded:  # just started: not blind to what was revoked before
            left = self._wait_until - time.monotonic()
            if left > 0 and not self._loaded.ready():
                with eventlet.Timeout(left, False):
                    self._loaded.wait()
            if not self.revocations_loaded:  # fail closed: a signed-out token must not pass
                raise Unavailable("revocations_unavailable",
                                  "Sign-in checks are starting up; retry in a moment.",
                                  {"retry_after": int(REVOCATIONS_RETRY_S) + 1})
        if self.revocations.is_revoked(principal.claims):
            raise Unauthorized("token_revoked", "The access token was revoked (signed out); sign in again.")
        return principal


class RevocationFeed(DependencyProvider):
    """For the gateway's handlers of identity's revocation events: records them in the list
    the token checks read."""

    keys = TokenKeys()

    def get_dependency(self, worker_ctx):
        return self

    def apply(self, envelope: dict) -> bool:
        return self.keys.revocations.apply_event(envelope)

    def loaded(self) -> bool:
        """Whether the start-up read of identity's revocations has succeeded (readiness)."""
        return bool(self.keys.revocations_loaded)
