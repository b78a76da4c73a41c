"""A tiny nameko service for ``test_redelivery.py``: handlers and RPCs on the shared
entrypoints (``portal_common.entrypoints``) that fail as the test asks, and count each try in
a table of their own (``FLAKY_DSN`` / ``FLAKY_SCHEMA``)."""

from __future__ import annotations

import os

import kombu.serialization
from nameko.extensions import DependencyProvider

from portal_common.db import Database, make_green
from portal_common.entrypoints import ReconnectingRpcProxy, event_handler, rpc
from portal_common.errors import DatabaseUnavailable, InvalidInput

SOURCE = "flaky_probe"


class Tries(DependencyProvider):
    """Counts the tries of each key in the test's own schema."""

    def setup(self) -> None:
        make_green()
        self.db = Database(os.environ["FLAKY_DSN"], os.environ["FLAKY_SCHEMA"], size=4)

    def stop(self) -> None:
        self.db.close()

    def get_dependency(self, worker_ctx):
        return self

    def count(self, key: str) -> int:
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO tries (key, n) VALUES (%s, 1) ON CONFLICT (key) DO UPDATE "
                        "SET n = tries.n + 1 RETURNING n", (key,))
            return cur.fetchone()["n"]

    def handled(self, key: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO handled (key) VALUES (%s)", (key,))


class FlakyService:
    name = "flaky"

    tries = Tries()
    itself = ReconnectingRpcProxy("flaky")

    @rpc
    def ping(self) -> str:
        return "pong"

    @rpc
    def echo_types(self, value: dict) -> dict:
        """``value`` as received, its values' types, and the decoder this process has for JSON."""
        decoder = kombu.serialization.registry._decoders["application/json"]
        return {"value": value, "types": sorted({type(v).__name__ for v in value.values()}),
                "decoder": f"{decoder.__module__}.{decoder.__qualname__}"}

    @rpc
    def ping_through_proxy(self) -> str:
        """``ping`` called through the services' RPC proxy (its request as a service sends one)."""
        return self.itself.ping()

    @event_handler(SOURCE, "ProbeHappened")
    def on_probe(self, payload: dict) -> None:
        """Fails the first ``fail`` tries (for ever with -1); ``invalid`` fails as bad input."""
        key = payload["key"]
        n = self.tries.count(key)
        if payload.get("invalid"):
            raise InvalidInput("invalid_input", "the probe says it is malformed")
        fail = int(payload.get("fail", 0))
        if fail < 0 or n <= fail:
            raise RuntimeError(f"probe {key} fails try {n}")
        self.tries.handled(key)

    @rpc
    def lose_connection(self, key: str, fail: int, retry_safe: bool) -> int:
        """Fails as a broken database connection would on the first ``fail`` calls."""
        n = self.tries.count(key)
        if n <= fail:
            raise DatabaseUnavailable(retry_safe=retry_safe)
        return n
