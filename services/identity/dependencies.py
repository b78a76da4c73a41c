"""The nameko dependency providers of identity's own: the outside parties its settings choose,
and the signing key of this worker process. ``service.py`` declares them; each hands the
application layer plain objects."""

from __future__ import annotations

import threading
import time

from nameko.extensions import DependencyProvider

from portal_common.db import Database
from services.identity import adapters
from services.identity import settings as identity_settings
from services.identity.adapters.vneid import VneidProvider
from services.identity.application import keys
from services.identity.domain import passwords
from services.identity.domain.tokens import SigningKey

RELOAD_EVERY_S = 5.0


class Parties(DependencyProvider):
    """The settings and the outside-party adapters they choose (and VNeID, when configured)."""

    def setup(self) -> None:
        self.settings = identity_settings.load()
        passwords.prepare(self.settings.argon2)
        self.adapters: adapters.Adapters | None = None
        self.vneid_settings = identity_settings.load_vneid()
        self.vneid = VneidProvider(self.vneid_settings) if self.vneid_settings.enabled else None
        kinds = {self.settings.carrier_adapter, self.settings.bhxh_adapter, self.settings.sms_adapter}
        if not kinds <= {"local", "http"}:  # refuse to start rather than fail every call
            raise ValueError(f"unknown adapter kind in {sorted(kinds)} (use 'local' or 'http')")

    def get_dependency(self, worker_ctx):
        return self

    def bind_db(self, db) -> adapters.Adapters:
        if self.adapters is None:
            self.adapters = adapters.build(self.settings, db)
        return self.adapters


class SigningKeys(DependencyProvider):
    """The current signing key of this worker process, reloaded now and then for rotations."""

    def __init__(self) -> None:
        self.db: Database | None = None
        self.settings: identity_settings.KeySettings | None = None
        self._key: SigningKey | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def setup(self) -> None:
        from portal_common.nameko_ext import _dsn

        self.settings = identity_settings.load_keys()
        self.db = Database(_dsn(self.container, "identity"), "identity", size=2, application_name="identity-keys")

    def start(self) -> None:
        keys.ensure_key(self.db, self.settings)
        self.reload()

    def stop(self) -> None:
        if self.db is not None:
            self.db.close()

    def reload(self) -> SigningKey:
        with self._lock:
            self._key = keys.current(self.db, self.settings)
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
        return keys.jwks(self._provider.db)

    def rotate(self, delay_s: float | None = None) -> str:
        return keys.rotate(self._provider.db, self._provider.settings, delay_s)
