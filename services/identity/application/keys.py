"""The token-signing keys: made on first start, kept in identity's own table (or the one
``IDENTITY_SIGNING_KEY`` / ``IDENTITY_SIGNING_KEY_FILE`` configures) so every identity worker
and every restart signs with the same key, and published as a JWK set.

The set publishes the current key and the one before it, so tokens signed just before a
rotation stay verifiable until they expire, and a rotated-in key from the moment it is made:
it signs only ``KEY_ACTIVATION_DELAY`` seconds later (default 30, more than the gateway's
10-second refetch throttle), so no gateway ever sees a token whose key it could not fetch.
When ``IDENTITY_KEY_PASSPHRASE`` is set, private keys are stored encrypted with it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal_common.db import Database
from services.identity import repository as repo
from services.identity.domain import tokens
from services.identity.domain.tokens import ALGORITHM, SigningKey
from services.identity.settings import KeySettings

PUBLISHED_KEYS = 2


def _store(cur, key: Ed25519PrivateKey, keys: KeySettings, delay_s: float = 0.0) -> str:
    kid = tokens.thumbprint(key)
    repo.save_signing_key(cur, kid, ALGORITHM, tokens.key_to_pem(key, keys.passphrase),
                          tokens.public_jwk(key, kid), delay_s)
    return kid


def ensure_key(db: Database, keys: KeySettings) -> None:
    """Make sure a current key exists (the configured one when set); safe from many workers."""
    configured = tokens.key_from_pem(keys.configured_pem, keys.passphrase) if keys.configured_pem else None
    with db.transaction() as cur:
        repo.lock_signing_keys(cur)
        newest = repo.newest_signing_kid(cur)
        if configured is not None:
            if newest != tokens.thumbprint(configured):
                # a newly configured key waits like a rotation, unless it is the very first
                _store(cur, configured, keys, keys.activation_delay_s if newest is not None else 0.0)
        elif newest is None:
            _store(cur, tokens.new_signing_key(), keys)


def rotate(db: Database, keys: KeySettings, delay_s: float | None = None) -> str:
    """Make a new key, published now and signing after the activation delay; the old one
    stays published until the next rotation."""
    with db.transaction() as cur:
        repo.lock_signing_keys(cur)
        return _store(cur, tokens.new_signing_key(), keys, keys.activation_delay_s if delay_s is None else delay_s)


def jwks(db: Database) -> dict:
    """The published set: keys waiting to sign, then the current and the previous key."""
    with db.transaction() as cur:
        return {"keys": repo.published_jwks(cur, PUBLISHED_KEYS)}


def current(db: Database, keys: KeySettings) -> SigningKey:
    with db.transaction() as cur:
        row = repo.current_signing_key(cur)
    if row is None:
        raise RuntimeError("no signing key: ensure_key() has not run")
    return SigningKey(row["kid"], tokens.key_from_pem(row["private_pem"], keys.passphrase))
