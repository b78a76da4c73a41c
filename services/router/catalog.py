"""What the router asks the catalog beside its events: the next step of a liên thông chain.

A procedure whose result feeds another one names it in the catalog (``next_procedure``:
its code and the kind of agency that implements it). For a submitted dossier the router
looks that agency up for the applicant's place and tells the receiving agency where the
dossier goes next. Plain functions over any object with the catalog's RPC methods, so they
run the same against the real service and in tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


def chain_step(catalog: Any, procedure_code: str, province: Any, ward: Any) -> dict | None:
    """``{"procedure": {code, name}, "agency": {code, name, level} | None}`` or None when the
    procedure feeds no other one. ``agency`` is None when no agency of the named kind
    implements the next procedure for that place (the receiving agency then chooses)."""
    procedure = catalog.get_procedure(procedure_code)
    step = procedure.get("next_procedure") if isinstance(procedure, dict) else None
    if not isinstance(step, dict) or not isinstance(step.get("code"), str):
        return None
    following = catalog.get_procedure(step["code"])
    agencies = catalog.agencies_for(step["code"], province=province, ward=ward) or []
    kind = step.get("agency_kind")
    agency = next((a for a in agencies if kind is None or a.get("kind") == kind), None)
    return {
        "procedure": {"code": step["code"], "name": following.get("name") if isinstance(following, dict) else None},
        "agency": {"code": agency["code"], "name": agency.get("name"), "level": agency.get("level")}
        if agency else None,
    }


class TtlCache:
    """Answers kept for ``ttl_s`` seconds (an RPC per submitted dossier would cost more than
    the routing itself); a failed fetch is not kept."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000):
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, fetch: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = fetch()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now + self.ttl_s, value)
        return value
