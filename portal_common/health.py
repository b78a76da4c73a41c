"""The health RPC every service exposes: is my database there, and since this answered over
RPC, so is the broker."""

from __future__ import annotations

import time

from nameko.rpc import rpc


class HealthRpc:
    """Mixin for a nameko service with a ``db`` dependency (``portal_common.nameko_ext``)."""

    @rpc
    def health(self) -> dict:
        started = time.perf_counter()
        database = self.db.ping()
        return {
            "service": self.name,
            "status": "ok" if database else "degraded",
            "checks": {"database": database, "broker": True},
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
