"""The local copy of the catalog's agencies, brought up to the catalog's own.

The router follows successor chains in its local copy, which catalog events keep current.
An event published while the router's queue for its type did not exist is dropped by the
exchange, and then the router could hold an agency as active that the catalog has
dissolved, or a successor it never heard was dissolved in turn, and route a dossier to a
predecessor: at a fresh deployment the catalog publishes its seed as soon as it starts
(``deploy/topology.py`` declares the queues ahead for that; a broker that lost its queues,
or one declared by hand, would still miss events). ``resolve_agency`` only covers codes the
copy lacks. So the router also reads the catalog's whole list (``list_agencies``, dissolved
ones included) once it has started and then every ``AGENCY_SYNC_INTERVAL`` seconds, and
applies each agency as its latest event would be applied: only where the catalog's version
is above the copy's, so neither an event nor this read can take the copy back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from portal_common.db import Database
from services.router import repository

log = logging.getLogger(__name__)


class AgencySync:
    """Reads the catalog's agencies when due and applies what the local copy lacks."""

    def __init__(self, db: Database, list_remote: Callable[[], list[dict]] | None, interval_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.db = db
        self.list_remote = list_remote
        self.interval_s = interval_s
        self.clock = clock
        self._done_at: float | None = None  # the last read that succeeded
        self._failing = False

    def due(self) -> bool:
        return self.list_remote is not None and (
            self._done_at is None or self.clock() - self._done_at >= self.interval_s)

    def run_if_due(self) -> int | None:
        """Sync when never done or done ``interval_s`` ago; the rows changed, or None when not
        due or the catalog did not answer (tried again at the next call)."""
        if not self.due():
            return None
        try:
            agencies = self.list_remote()
        except Exception as exc:  # the catalog is not up yet, or unavailable: try again soon
            if not self._failing:
                log.info("router: could not read the catalog's agencies: %s", type(exc).__name__)
            self._failing = True
            return None
        self._failing = False
        changed = self.apply(agencies)
        self._done_at = self.clock()
        if changed:
            log.warning("router: %d agencies of the local copy were behind the catalog and were updated", changed)
        return changed

    def apply(self, agencies: list[dict]) -> int:
        """Apply the catalog's agencies where their version is above the copy's; rows changed."""
        wanted = [a for a in (_agency(item) for item in agencies) if a is not None]
        if not wanted:
            return 0
        changed = 0
        with self.db.transaction() as cur:
            versions = repository.agency_versions(cur, [a["code"] for a in wanted])
            for a in wanted:
                if versions.get(a["code"], -1) < a["version"]:
                    changed += repository.upsert_agency(cur, a["code"], a["name"], a["status"], a["successor"],
                                                        a["version"])
        return changed


def _agency(item: Any) -> dict | None:
    """An agency of the catalog's answer in the copy's terms, or None when malformed."""
    if not isinstance(item, dict):
        return None
    code, version, status = item.get("code"), item.get("version"), item.get("status")
    successor = item.get("successor")
    if not isinstance(code, str) or not code or not isinstance(version, int) or isinstance(version, bool) \
            or status not in ("active", "dissolved") or not (successor is None or isinstance(successor, str)):
        return None
    name = item.get("name") if isinstance(item.get("name"), str) else None
    return {"code": code, "name": name, "status": status, "successor": successor, "version": version}
