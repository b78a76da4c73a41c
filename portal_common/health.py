"""What every service exposes to operators: the ``health`` RPC and its metrics port.

``HealthRpc`` is the mixin every service class inherits. Through it each service gets the
``health`` RPC (is my database there; since this answered over RPC, so is the broker) and a
``ServiceMetrics`` dependency: worker timings, scrape-time readings of its log and queues, and
``/metrics``, ``/health``, ``/ready`` over HTTP on ``METRICS_PORT`` (see
``portal_common.metrics``). The RPC also says which process answered (``instance``, ``pid``),
whether it is the one publishing the service's log and which timer ticks it acted on, so
operators and tests see how the work spreads over a service's processes. Putting it in the
mixin gives every service the same operator surface without each one wiring it. The mixin
also freezes the process's start-up heap out of the garbage collector (``portal_common.heap``).
"""

from __future__ import annotations

import gc
import os
import time

from portal_common.config import instance_id
from portal_common.entrypoints import rpc
from portal_common.heap import StartupHeapFrozen
from portal_common.metrics import ServiceMetrics
from portal_common.ticks import TICKS


class HealthRpc:
    """Mixin for a nameko service with a ``db`` dependency (``portal_common.nameko_ext``).

    A service may define ``health_details()`` (a plain method, not an entrypoint) returning
    more of this process's state for the answer."""

    service_metrics = ServiceMetrics()
    startup_heap = StartupHeapFrozen()

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
            # which of the service's processes answered (RPCs spread over them) and its part
            # in the once-per-service work: the outbox relay's lock, the timers' ticks
            "instance": instance_id(),
            "pid": os.getpid(),
            "outbox_leader": bool(getattr(getattr(self, "outbox", None), "is_leader", False)),
            "ticks": TICKS.snapshot(),
            # the start-up heap kept out of full collections (portal_common.heap): 0 means
            # every full collection walks it and pauses the process for tens of milliseconds
            "gc_frozen_objects": gc.get_freeze_count(),
            # its CPU priority (deploy.launcher: the log's background consumers run at 10)
            "cpu_nice": os.getpriority(os.PRIO_PROCESS, 0),
            # what the service adds about this process (e.g. its caches), when it says
            **(self.health_details() if hasattr(self, "health_details") else {}),
        }
