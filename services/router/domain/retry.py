"""When a failed delivery is tried again: exponential back-off with full jitter, and the
attempt after which the router gives up (the delivery becomes a dead letter)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter, and the attempt after which we give up."""

    max_attempts: int = 8
    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempt: int, rand: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        Full jitter (uniform in [ceiling/2, ceiling]) spreads retries of many deliveries that
        failed together, so a recovering agency is not hit by all of them at once.
        """
        ceiling = min(self.cap_s, self.base_s * (2 ** max(attempt - 1, 0)))
        r = (rand or random).random()
        return ceiling / 2 + r * ceiling / 2

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


def next_attempt_at(now: dt.datetime, attempt: int, policy: RetryPolicy,
                    rand: random.Random | None = None) -> dt.datetime:
    return now + dt.timedelta(seconds=policy.delay(attempt, rand))
