"""Lockout with back-off after repeated sign-in failures.

Counted per account (or per typed identifier when no account has it, so unknown and known
identifiers behave the same) and per source address. After ``threshold`` failures in a row
the key is locked for ``base`` seconds, doubling with every further lockout up to ``ceiling``;
a success clears the account's counter.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from portal_common.errors import TooManyRequests

FAILURE_WINDOW = dt.timedelta(minutes=15)  # failures older than this are forgotten


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int
    base_seconds: int
    ceiling_seconds: int

    def lock_for(self, lockouts_so_far: int) -> dt.timedelta:
        """How long the next lockout lasts, given how many came before it."""
        seconds = self.base_seconds * (2 ** min(lockouts_so_far, 20))
        return dt.timedelta(seconds=min(seconds, self.ceiling_seconds))


@dataclass(frozen=True)
class FailureState:
    failures: int
    lockouts: int
    locked_until: dt.datetime | None


def after_failure(state: FailureState, policy: LockoutPolicy, now: dt.datetime,
                  last_failure_at: dt.datetime | None = None) -> FailureState:
    """The counter after one more failure: locks (and resets the count) at the threshold.
    Failures before ``FAILURE_WINDOW`` (counted from ``last_failure_at``) are forgotten first."""
    if last_failure_at is not None and last_failure_at < now - FAILURE_WINDOW:
        state = FailureState(0, state.lockouts, state.locked_until)
    failures = state.failures + 1
    if failures >= policy.threshold:
        return FailureState(0, state.lockouts + 1, now + policy.lock_for(state.lockouts))
    return FailureState(failures, state.lockouts, state.locked_until)


def retry_after(state: FailureState | None, now: dt.datetime) -> int | None:
    """Seconds until the key may try again, or None when it is not locked."""
    if state is None or state.locked_until is None or state.locked_until <= now:
        return None
    return max(1, int((state.locked_until - now).total_seconds() + 0.999))


def refuse_if_locked(waits: Iterable[int | None]) -> None:
    """Raise ``signin_locked`` (with the longest wait) when any key checked is locked."""
    wait = max(filter(None, waits), default=None)
    if wait:
        raise TooManyRequests("signin_locked", "Too many failed sign-ins; try again later.",
                              {"retry_after": wait})


def source_key(client_ip: str | None) -> str:
    """The key failures from one address are counted under."""
    return client_ip or "unknown"


def exempt(source: str, networks: Iterable[str]) -> bool:
    """True for an address inside one of ``networks`` (not counted per source; bad entries ignored)."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False
