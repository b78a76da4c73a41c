"""What every service exposes to operators: the ``health`` RPC and its metrics port.

``HealthRpc`` is the mixin every service class inherits. Through it each service gets the
``health`` RPC (is my database there; since this answered over RPC, so is the broker) and a
``ServiceMetrics`` dependency: worker timings, scrape-time readings of its log and queues, and
``/metrics``, ``/health``, ``/ready`` over HTTP on ``METRICS_PORT`` (see
``portal_common.metrics``). Putting it in the mixin gives every service the same operator
surface without each one wiring it.
"""

from __future__ import annotations

import time

from portal_common.entrypoints import rpc
from portal_common.metrics import ServiceMetrics


class HealthRpc:
    """Mixin for a nameko service with a ``db`` dependency (``portal_common.nameko_ext``)."""

    service_metrics = ServiceMetrics()

    @rpc
    def health(self) -> dict:
        started = time.perf_counter()
        database = self.db.ping()
        return {
            "service": self.name,
            "status": "ok" if database else "degraded",
            "checks": {"database": database, "broker": True},
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "metrics_port": self.service_metrics.port,
        }
