"""Request limits: body size, JSON nesting depth, and per-client and per-account rate limits
with ``Retry-After``.

Rate limits are counted in this gateway process (a sliding window per key); a deployment with
several gateways behind a balancer gets N times the budget, which the limits allow for.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from portal_common import config


@dataclass(frozen=True)
class Limit:
    requests: int
    per_seconds: float


# Named budgets; the numbers are for a real portal and can be tuned by environment.
DEFAULT_LIMITS = {
    "signin": Limit(config.env_int("RATE_SIGNIN", 20, "gateway"), 60),
    "register": Limit(config.env_int("RATE_REGISTER", 10, "gateway"), 60),
    "otp": Limit(config.env_int("RATE_OTP", 10, "gateway"), 60),
    "lookup": Limit(config.env_int("RATE_LOOKUP", 120, "gateway"), 60),
    "default": Limit(config.env_int("RATE_DEFAULT", 1200, "gateway"), 60),
}
# Per-account budgets (``<budget>:account``): the same numbers unless ``RATE_<BUDGET>_ACCOUNT``
# says otherwise, so one account cannot spend a budget from many addresses.
for _name in list(DEFAULT_LIMITS):
    _per_account = config.env(f"RATE_{_name.upper()}_ACCOUNT", None, "gateway")
    if _per_account:
        DEFAULT_LIMITS[f"{_name}:account"] = Limit(int(_per_account), DEFAULT_LIMITS[_name].per_seconds)

MAX_BODY_BYTES = config.env_int("MAX_BODY_BYTES", 12 * 1024 * 1024, "gateway")
MAX_QUERY_BYTES = config.env_int("MAX_QUERY_BYTES", 2048, "gateway")
# The deepest a JSON body may nest ([ and { together): far past any real request, and small
# enough that nothing which parses it (json, marshmallow) comes near Python's recursion limit.
MAX_JSON_DEPTH = config.env_int("MAX_JSON_DEPTH", 64, "gateway")


class RateLimiter:
    """Sliding-window counters keyed by (budget, client)."""

    def __init__(self, limits: dict[str, Limit] | None = None):
        self.limits = limits or DEFAULT_LIMITS
        self._hits: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def check(self, budget: str, client: str) -> float | None:
        """Count one request; returns seconds to wait when over budget, else None."""
        limit = self.limits.get(budget) or self.limits.get(budget.split(":")[0]) or self.limits["default"]
        now = time.monotonic()
        key = (budget, client)
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= limit.per_seconds:
                hits.popleft()
            if len(hits) >= limit.requests:
                return max(limit.per_seconds - (now - hits[0]), 1.0)
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle clients
                self._hits = {k: v for k, v in self._hits.items() if v}
        return None
