"""The catalog's answers a submission needs, kept in this worker process between submissions.

A submission asks the catalog two things: the procedure's current version
(``get_procedure``) and the agencies implementing it for the applicant's province and ward
(``agencies_for``). ``CachedCatalog`` answers both from a ``TtlCache`` and passes every other
call through to the catalog. The agencies are kept per procedure and province, as the
catalog's ``agencies_by_ward`` table for all of the province's wards: a country's applicants
come from thousands of wards, and keeping one answer per ward made nearly every filing from a
place not seen within the TTL ask the catalog once more (a quarter of a filing's CPU, measured
with ``bench profile --places``). A ward the table does not list, a filing without a place, or
a catalog without that call, is asked about per place as before.

Entries are dropped when the catalog says something changed: each dossier process subscribes
to the catalog's events with a broadcast handler (``service.py``) and calls
``CatalogCache.on_event``, so a withdrawn procedure or a dissolved agency stops being accepted
as soon as its event arrives. Events published while the
broker connection was down never reach the process (a broadcast queue lives with its
connection), so the whole cache is dropped when the consumer reconnects; the TTL is the
last safety net.

A look-up that began before an invalidation never stores its (possibly older) answer after
it: every invalidation starts a new generation and a store from an earlier one is dropped.
Only answers are cached, never errors (an unknown or withdrawn procedure asks again).

Settings (per service, ``DOSSIER_`` prefix first): ``CATALOG_CACHE_TTL`` seconds (60; ``0``
turns the cache off: every submission asks the catalog, as without it) and
``CATALOG_CACHE_SIZE`` entries (1024, least recently used dropped first).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from nameko.extensions import DependencyProvider

from portal_common import config
from portal_common.contracts.catalog import load_ward_table, ward_agencies
from portal_common.entrypoints import ReconnectingQueueConsumer

log = logging.getLogger(__name__)

#: catalog events after which cached answers may be wrong
PROCEDURE_EVENTS = ("ProcedurePublished", "ProcedureDrafted", "ProcedureAmended", "ProcedureWithdrawn")
AGENCY_EVENTS = ("AgencyRegistered", "AgencyAmended", "AgencyDissolved")

_MISSING = object()


class TtlCache:
    """A bounded, least-recently-used map whose entries expire ``ttl`` seconds after stored.

    ``generation`` changes with every invalidation; ``put(..., generation=g)`` stores only
    while it is still ``g`` (the value was read before anything changed).
    """

    def __init__(self, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.ttl = float(ttl)
        self.max_size = int(max_size)
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return default
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, value: Any, generation: int | None = None) -> bool:
        """Store ``value``; False (nothing stored) when an invalidation came since ``generation``."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return False
            self._entries[key] = (self._clock() + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
            return True

    def invalidate(self, match: Callable[[Hashable], bool] | None = None) -> int:
        """Drop the entries whose key ``match``es (all without one); how many were dropped."""
        with self._lock:
            self.generation += 1
            if match is None:
                dropped = len(self._entries)
                self._entries.clear()
                return dropped
            keys = [k for k in self._entries if match(k)]
            for k in keys:
                del self._entries[k]
            return len(keys)


def _area(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class CachedCatalog:
    """The catalog RPC proxy with ``get_procedure`` (current version) and ``agencies_for``
    answered from ``cache``; anything else goes straight to the proxy.

    Callers get a copy of the cached answer, so nothing they do changes the cache.
    """

    def __init__(self, proxy: Any, cache: TtlCache) -> None:
        self._proxy = proxy
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proxy, name)

    def _cached(self, key: tuple, fetch: Callable[[], Any]) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            generation = self._cache.generation
            value = fetch()  # an error is raised to the caller and nothing is stored
            self._cache.put(key, value, generation)
        return copy.deepcopy(value)

    def get_procedure(self, code: str, version: int | None = None, include_draft: bool = False) -> Any:
        if version is not None or include_draft:
            return self._proxy.get_procedure(code, version, include_draft)
        return self._cached(("procedure", str(code)), lambda: self._proxy.get_procedure(code))

    def agencies_for(self, procedure_code: str, province: Any = None, ward: Any = None) -> Any:
        """A ward's agencies from its province's table (``agencies_by_ward``), kept once for
        all of the province's wards; otherwise (no province or ward, a ward the table does not
        list, a catalog without that call) the catalog's answer for this one place."""
        if _area(province) is not None and _area(ward) is not None:
            table = self._table(procedure_code, province)
            found = ward_agencies(table, ward) if table is not None else None
            if found is not None:
                return copy.deepcopy(found)
        key = ("agencies", str(procedure_code), _area(province), _area(ward))
        return self._cached(key, lambda: self._proxy.agencies_for(procedure_code, province=province, ward=ward))

    def _table(self, procedure_code: str, province: Any) -> dict | None:
        key = ("agencies", str(procedure_code), _area(province), "*")
        table = self._cache.get(key, _MISSING)
        if table is _MISSING:
            generation = self._cache.generation
            table = load_ward_table(lambda: self._proxy.agencies_by_ward(procedure_code, province))
            self._cache.put(key, table, generation)
        return table


class CatalogCache(DependencyProvider):
    """One ``TtlCache`` per dossier process, shared by its workers.

    ``get_dependency`` gives the workers this provider: ``wrap(proxy)`` for the submission's
    look-ups (the bare proxy when the cache is off), ``on_event(envelope)`` for the catalog's
    events.
    """

    queue_consumer = ReconnectingQueueConsumer()  # the process's one consumer: told of reconnections

    def __init__(self, ttl: float | None = None, max_size: int | None = None) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.cache: TtlCache | None = None

    def setup(self) -> None:
        ttl = self.ttl if self.ttl is not None else config.env_float("CATALOG_CACHE_TTL", 60.0, "dossier")
        size = self.max_size if self.max_size is not None else config.env_int("CATALOG_CACHE_SIZE", 1024, "dossier")
        self.cache = TtlCache(ttl, max(1, size)) if ttl > 0 else None
        if self.container is not None:  # bound to a running service (not a bare unit-test instance)
            self.queue_consumer.add_reconnect_listener(self.on_reconnect)

    def on_reconnect(self) -> None:
        """Catalog events may have gone by while the connection was down: forget everything."""
        if self.cache is not None:
            log.info("catalog cache: dropped %d entries after a broker reconnection", self.cache.invalidate())

    def get_dependency(self, worker_ctx: Any) -> CatalogCache:
        return self

    def wrap(self, proxy: Any) -> Any:
        return CachedCatalog(proxy, self.cache) if self.cache is not None else proxy

    def stats(self) -> dict[str, Any]:
        """This process's cache: entries, invalidations so far (``generation``), hits, misses."""
        if self.cache is None:
            return {"enabled": False}
        return {"enabled": True, "entries": len(self.cache), "generation": self.cache.generation,
                "hits": self.cache.hits, "misses": self.cache.misses}

    def on_event(self, event_type: str, envelope: Any) -> None:
        if self.cache is not None:
            invalidate(self.cache, event_type, envelope)


def invalidate(cache: TtlCache, event_type: str, envelope: Any) -> int:
    """Drop what a catalog event may have made wrong: a procedure event its procedure's
    entries (version and agencies), an agency event every agency list; anything unexpected
    (no code in the event) everything."""
    data = envelope.get("data") if isinstance(envelope, dict) else None
    code = data.get("code") if isinstance(data, dict) else None
    if event_type in PROCEDURE_EVENTS and code:
        dropped = cache.invalidate(lambda key: key[1] == str(code))
    elif event_type in AGENCY_EVENTS:
        dropped = cache.invalidate(lambda key: key[0] == "agencies")
    else:
        dropped = cache.invalidate()
    log.debug("catalog cache: %s %s dropped %d entries", event_type, code or "", dropped)
    return dropped
