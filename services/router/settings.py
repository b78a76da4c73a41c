"""The router's delivery settings, read from the environment (``ROUTER_`` names first): how
many attempts, the back-off, how long a lease holds, how many due deliveries a tick takes,
how many dossier events are handled together (``EVENT_BATCH``, ``EVENT_BATCHES``), and how long
one that would be handled alone waits for others to join it (``EVENT_BATCH_LINGER_MS``, 0).

A linger saves CPU at a moderate, steady rate, where events come one at a time: at 45
submissions a second, 25 ms took the machine from 62-71% busy to 56-62%. It costs each event
that long before its delivery and notice, and a client that waits for each delivery before it
sends the next event (``bench delivery``'s router path) gets fewer per second, so it is off by
default; see ``bench/README.md``, "A lone event's linger"."""

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
    # how long an event that would be handled alone waits for others to join its batch
    event_linger_s: float = 0.0

    @classmethod
    def from_env(cls) -> Settings:
        s = "router"
        return cls(config.env_int("DELIVERY_MAX_ATTEMPTS", 8, s),
                   config.env_float("DELIVERY_BACKOFF_BASE", 1.0, s),
                   config.env_float("DELIVERY_BACKOFF_CAP", 300.0, s),
                   config.env_float("DELIVERY_LEASE", 30.0, s),
                   config.env_int("DELIVERY_BATCH", 50, s),
                   config.env_int("EVENT_BATCH", 50, s),
                   config.env_int("EVENT_BATCHES", 1, s),
                   config.env_float("EVENT_BATCH_LINGER_MS", 0.0, s) / 1000.0)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_cap_s)
