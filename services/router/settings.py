"""The router's delivery settings, read from the environment (``ROUTER_`` names first): how
many attempts, the back-off, how long a lease holds, how many due deliveries a tick takes,
how many dossier events are handled together."""

from __future__ import annotations

from dataclasses import dataclass

from portal_common import config
from services.router.domain.retry import RetryPolicy


@dataclass
class Settings:
    max_attempts: int = 8
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    lease_s: float = 30.0
    batch: int = 50
    event_batch: int = 50  # dossier events handled together at most (1: one at a time)
    # batches of dossier events handled at the same time: one lets the events that arrive while
    # it runs all join the next, the fewest transactions when the CPU is the bound
    event_batches: int = 1

    @classmethod
    def from_env(cls) -> Settings:
        s = "router"
        return cls(config.env_int("DELIVERY_MAX_ATTEMPTS", 8, s),
                   config.env_float("DELIVERY_BACKOFF_BASE", 1.0, s),
                   config.env_float("DELIVERY_BACKOFF_CAP", 300.0, s),
                   config.env_float("DELIVERY_LEASE", 30.0, s),
                   config.env_int("DELIVERY_BATCH", 50, s),
                   config.env_int("EVENT_BATCH", 50, s),
                   config.env_int("EVENT_BATCHES", 1, s))

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_cap_s)
