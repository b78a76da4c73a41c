"""VNeID as an OpenID Connect provider: identity's relying-party side of the protocol.

The protocol is the libraries' work, not ours: authlib builds the authorization URL (PKCE S256
from the verifier we keep) and calls the token endpoint (``client_secret_basic``,
``client_secret_post`` or ``private_key_jwt``); joserfc verifies ID and logout tokens against the
provider's JWKS, with only the configured asymmetric algorithms allowed (never ``none`` or an
HMAC), and checks ``iss``, ``aud``, ``exp``, ``iat`` and ``nonce``.

The discovery document and the JWKS are cached per process. A token naming a key id the cached
JWKS lacks (the provider rotated its key) makes one refetch, at most every
``VNEID_JWKS_REFETCH_INTERVAL`` seconds, so a flood of tokens with made-up key ids cannot turn
into a flood of requests to the provider. No code, token or secret is ever logged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from portal_common.errors import Unauthorized, Unavailable
from services.identity.domain import oidc
from services.identity.settings import VneidSettings

log = logging.getLogger(__name__)

UNAVAILABLE = ("vneid_unavailable", "VNeID cannot be reached just now; try again shortly.")
CODE_REFUSED = ("vneid_code_invalid", "The provider refused the authorization code (used, expired or not ours).")


class VneidProvider:
    """One per identity process: the provider's metadata and keys, cached."""

    def __init__(self, settings: VneidSettings, http: requests.Session | None = None):
        self.settings = settings
        self._http = http or requests.Session()
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = float("-inf")
        self.jwks_fetches = 0

    # -- provider documents ------------------------------------------------------------

    def _get_json(self, url: str, **kwargs: Any) -> dict:
        try:
            resp = self._http.get(url, timeout=self.settings.http_timeout_s, **kwargs)
        except requests.RequestException as exc:
            log.warning("VNeID request failed: %s", type(exc).__name__)
            raise Unavailable(*UNAVAILABLE) from None
        if resp.status_code != 200:
            log.warning("VNeID answered %s for %s", resp.status_code, url.split("?", 1)[0])
            raise Unavailable(*UNAVAILABLE)
        try:
            body = resp.json()
        except ValueError:
            raise Unavailable(*UNAVAILABLE) from None
        if not isinstance(body, dict):
            raise Unavailable(*UNAVAILABLE)
        return body

    def metadata(self) -> dict:
        """The discovery document (cached); its ``issuer`` must be the configured one (OIDC Discovery §4.3)."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < self.settings.discovery_ttl_s:
            return self._metadata
        doc = self._get_json(f"{self.settings.issuer}/.well-known/openid-configuration")
        if doc.get("issuer") != self.settings.issuer or not all(
                isinstance(doc.get(k), str) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")):
            log.error("VNeID discovery document names another issuer or lacks endpoints")
            raise Unavailable(*UNAVAILABLE)
        with self._lock:
            self._metadata, self._metadata_at = doc, time.monotonic()
        return doc

    def _keyset(self, kid: str | None) -> KeySet:
        """The cached JWKS; fetched when there is none yet, and refetched when it lacks ``kid``
        (at most once per interval). Concurrent callers wait for one fetch rather than each
        making their own, or being refused while it is under way."""
        keys = self._keys
        if keys is not None and _holds(keys, kid):
            return keys
        with self._fetch_lock:
            keys = self._keys
            if keys is not None and _holds(keys, kid):  # another caller fetched it meanwhile
                return keys
            if keys is None or time.monotonic() - self._keys_at >= self.settings.jwks_refetch_s:
                self._keys_at = time.monotonic()
                document = self._get_json(self.metadata()["jwks_uri"])
                try:
                    keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError):
                    raise Unavailable(*UNAVAILABLE) from None
                self.jwks_fetches += 1
                self._keys = keys
        if keys is None or not _holds(keys, kid):
            raise oidc.refused("The token is signed with a key the provider does not publish.")
        return keys

    # -- the authorization code flow ------------------------------------------------------

    def _session(self, redirect_uri: str | None = None) -> OAuth2Session:
        s = self.settings
        secret: Any = s.client_secret
        if s.token_auth_method == "private_key_jwt":
            secret = _private_key(s.private_key_pem or "")
        session = OAuth2Session(client_id=s.client_id, client_secret=secret, scope=s.scope,
                                redirect_uri=redirect_uri, code_challenge_method="S256",
                                token_endpoint_auth_method=s.token_auth_method)
        if s.token_auth_method == "private_key_jwt":
            alg = "ES256" if isinstance(secret, ECKey) else "RS256"
            session.register_client_auth_method(PrivateKeyJWT(self.metadata()["token_endpoint"], alg=alg))
        return session

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str,
                          login_hint: str | None = None) -> str:
        extra = {"login_hint": login_hint} if login_hint else {}
        url, _ = self._session(redirect_uri).create_authorization_url(
            self.metadata()["authorization_endpoint"], state=state, code_verifier=code_verifier, nonce=nonce,
            **extra)
        return url

    def exchange(self, code: str, redirect_uri: str, code_verifier: str) -> dict:
        """Trade the code for tokens at the token endpoint (with the PKCE verifier)."""
        session = self._session(redirect_uri)
        try:
            token = session.fetch_token(self.metadata()["token_endpoint"], grant_type="authorization_code",
                                        code=code, code_verifier=code_verifier,
                                        timeout=self.settings.http_timeout_s)
        except OAuthError as exc:
            log.info("VNeID token endpoint refused the code: %s", exc.error)
            raise Unauthorized(*CODE_REFUSED) from None
        except requests.RequestException as exc:
            log.warning("VNeID token request failed: %s", type(exc).__name__)
            raise Unavailable(*UNAVAILABLE) from None
        except ValueError:  # not a JSON answer
            raise Unavailable(*UNAVAILABLE) from None
        if not isinstance(token.get("id_token"), str) or not isinstance(token.get("access_token"), str):
            raise oidc.refused()
        return dict(token)

    def userinfo(self, access_token: str) -> dict | None:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            return None
        return self._get_json(endpoint, headers={"Authorization": f"Bearer {access_token}"})

    # -- tokens the provider signs ----------------------------------------------------------

    def _verified(self, token: str, registry: jwt.JWTClaimsRegistry) -> dict:
        algorithms = list(self.settings.algorithms)
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise oidc.refused() from None
        if header.get("alg") not in algorithms:  # none, HS256 keyed with a public key, ...
            log.info("VNeID token refused: algorithm not allowed")
            raise oidc.refused("The token's algorithm is not allowed.")
        keys = self._keyset(header.get("kid") if isinstance(header.get("kid"), str) else None)
        try:
            claims = jwt.decode(token, keys, algorithms=algorithms).claims
            registry.validate(claims)
        except (JoseError, ValueError, TypeError) as exc:
            log.info("VNeID token refused: %s", type(exc).__name__)  # the kind only, never the token
            raise oidc.refused() from None
        return claims

    def verify_id_token(self, id_token: str, nonce: str) -> dict:
        s = self.settings
        registry = jwt.JWTClaimsRegistry(
            leeway=s.leeway_s, iss={"essential": True, "value": s.issuer},
            aud={"essential": True, "value": s.client_id}, exp={"essential": True}, iat={"essential": True},
            sub={"essential": True}, nonce={"essential": True, "value": nonce})
        claims = self._verified(id_token, registry)
        oidc.check_id_token(claims, s.client_id, time.time())
        return claims

    def verify_logout_token(self, logout_token: str) -> dict:
        s = self.settings
        registry = jwt.JWTClaimsRegistry(
            leeway=s.leeway_s, iss={"essential": True, "value": s.issuer},
            aud={"essential": True, "value": s.client_id}, iat={"essential": True}, jti={"essential": True})
        claims = self._verified(logout_token, registry)
        oidc.check_logout_token(claims)
        return claims


def _holds(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(k.kid == kid for k in keys)


def _private_key(pem: str) -> ECKey | RSAKey:
    """The client's private key for ``private_key_jwt`` (EC or RSA, PEM)."""
    try:
        return ECKey.import_key(pem)
    except (JoseError, ValueError, TypeError):
        return RSAKey.import_key(pem)
