"""The token-signing keys: made on first start, kept in identity's own table (or read from
``IDENTITY_SIGNING_KEY`` / ``IDENTITY_SIGNING_KEY_FILE`` when configured) so every identity
worker and every restart signs with the same key, and published as a JWK set.

The set publishes the current key and the one before it, so tokens signed just before a
rotation stay verifiable until they expire, and a rotated-in key from the moment it is made:
it signs only ``KEY_ACTIVATION_DELAY`` seconds later (default 30, more than the gateway's
10-second refetch throttle), so no gateway ever sees a token whose key it could not fetch.
When ``IDENTITY_KEY_PASSPHRASE`` is set, private keys are stored encrypted with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import zlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.extensions import DependencyProvider

from portal_common import config
from portal_common.db import Database
from services.identity.domain.tokens import ALGORITHM, SigningKey

PUBLISHED_KEYS = 2
RELOAD_EVERY_S = 5.0


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


def _passphrase() -> bytes | None:
    value = config.env("IDENTITY_KEY_PASSPHRASE", None)
    return value.encode() if value else None


def _to_pem(key: Ed25519PrivateKey) -> str:
    phrase = _passphrase()
    encryption = (serialization.BestAvailableEncryption(phrase) if phrase else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def _from_pem(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=_passphrase())
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the configured signing key must be an Ed25519 private key")
    return key


def configured_key() -> Ed25519PrivateKey | None:
    """The key named by the environment, if any (PEM text or a file holding it)."""
    pem = config.env("IDENTITY_SIGNING_KEY", None)
    path = config.env("IDENTITY_SIGNING_KEY_FILE", None)
    if not pem and path:
        pem = Path(path).read_text()
    return _from_pem(pem) if pem else None


def activation_delay() -> float:
    return config.env_float("KEY_ACTIVATION_DELAY", 30.0, "identity")


def _insert(cur, key: Ed25519PrivateKey, delay_s: float = 0.0) -> str:
    kid = thumbprint(key)
    cur.execute(
        "INSERT INTO signing_keys (kid, algorithm, private_pem, public_jwk, activates_at) "
        "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
        "ON CONFLICT (kid) DO UPDATE SET retired_at = NULL, created_at = now(), activates_at = excluded.activates_at",
        (kid, ALGORITHM, _to_pem(key), json.dumps(public_jwk(key, kid)), delay_s),
    )
    return kid


def ensure_key(db: Database) -> None:
    """Make sure a current key exists (the configured one when set); safe from many workers."""
    configured = configured_key()
    with db.transaction() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(b"identity:signing-keys"),))
        cur.execute("SELECT kid FROM signing_keys ORDER BY created_at DESC LIMIT 1")
        row = cur.fetchone()
        if configured is not None:
            if row is None or row["kid"] != thumbprint(configured):
                # a newly configured key waits like a rotation, unless it is the very first
                _insert(cur, configured, activation_delay() if row is not None else 0.0)
        elif row is None:
            _insert(cur, Ed25519PrivateKey.generate())


def rotate(db: Database, delay_s: float | None = None) -> str:
    """Make a new key, published now and signing after the activation delay; the old one
    stays published until the next rotation."""
    with db.transaction() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(b"identity:signing-keys"),))
        return _insert(cur, Ed25519PrivateKey.generate(), activation_delay() if delay_s is None else delay_s)


def jwks(db: Database) -> dict:
    """The published set: keys waiting to sign, then the current and the previous key."""
    with db.transaction() as cur:
        cur.execute(
            "(SELECT public_jwk, activates_at FROM signing_keys WHERE activates_at > now()) UNION ALL "
            "(SELECT public_jwk, activates_at FROM signing_keys WHERE activates_at <= now() "
            " ORDER BY activates_at DESC, created_at DESC LIMIT %s) ORDER BY activates_at DESC",
            (PUBLISHED_KEYS,))
        return {"keys": [row["public_jwk"] for row in cur.fetchall()]}


def current(db: Database) -> SigningKey:
    with db.transaction() as cur:
        cur.execute("SELECT kid, private_pem FROM signing_keys WHERE activates_at <= now() "
                    "ORDER BY activates_at DESC, created_at DESC LIMIT 1")
        row = cur.fetchone()
    if row is None:
        raise RuntimeError("no signing key: ensure_key() has not run")
    return SigningKey(row["kid"], _from_pem(row["private_pem"]))


class SigningKeys(DependencyProvider):
    """The current signing key of this worker process, reloaded now and then for rotations."""

    def __init__(self) -> None:
        self.db: Database | None = None
        self._key: SigningKey | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def setup(self) -> None:
        from portal_common.nameko_ext import _dsn

        self.db = Database(_dsn(self.container, "identity"), "identity", size=2, application_name="identity-keys")

    def start(self) -> None:
        ensure_key(self.db)
        self.reload()

    def stop(self) -> None:
        if self.db is not None:
            self.db.close()

    def reload(self) -> SigningKey:
        with self._lock:
            self._key = current(self.db)
            self._loaded_at = time.monotonic()
            return self._key

    def get_dependency(self, worker_ctx) -> KeyRing:
        return KeyRing(self)


class KeyRing:
    """What a worker sees: the key to sign with, the published set, rotation."""

    def __init__(self, provider: SigningKeys):
        self._provider = provider

    def signing_key(self) -> SigningKey:
        p = self._provider
        if p._key is None or time.monotonic() - p._loaded_at > RELOAD_EVERY_S:
            return p.reload()
        return p._key

    def jwks(self) -> dict:
        return jwks(self._provider.db)

    def rotate(self, delay_s: float | None = None) -> str:
        return rotate(self._provider.db, delay_s)
