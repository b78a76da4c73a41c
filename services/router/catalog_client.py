"""The router's client of the catalog's RPCs, beside its events: an agency the local copy has
never seen (``resolver``), and the next step of a liên thông chain (``chain_finder``).

A procedure whose result feeds another one names it in the catalog (``next_procedure``:
its code and the kind of agency that implements it). For a submitted dossier the router
looks that agency up for the applicant's place and tells the receiving agency where the
dossier goes next. ``chain_step`` is a plain function over any object with the catalog's RPC
methods, so it runs the same against the real service and in tests.

The router asks this for every submitted dossier, from whatever place its applicant lives in:
answers are kept by what they depend on (``CachedCatalog``), and the calls go over clients
kept open between them (``CatalogClients``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from nameko.exceptions import MethodNotFound, RemoteError

from portal_common import config
from portal_common.contracts.catalog import load_ward_table, ward_agencies
from portal_common.entrypoints import TransientClusterRpcProxy, TransientServiceRpcProxy
from portal_common.errors import ServiceError

log = logging.getLogger(__name__)


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


class CatalogClients:
    """Standalone clients of the catalog, kept open between calls (at most ``keep`` idle).

    Opening one costs more than the call it makes: a connection, a channel and a reply queue,
    about 12 ms and 9 ms of the broker's CPU. A client is used by one caller at a time; a
    caller finding none idle opens one. A call the catalog answered, with a result or with its
    own error, gives its client back. Any other failure (a lost connection, a time-out whose late
    reply the client could still read) closes the client; when it was a kept one, which may have
    gone stale while it waited, the call is tried once more on a new client."""

    def __init__(self, amqp_uri: str, timeout: float, keep: int = 4):
        self._config = {"AMQP_URI": amqp_uri}
        self._timeout = timeout
        self._keep = keep
        self._idle: list[tuple[TransientServiceRpcProxy, Any]] = []
        self._lock = threading.Lock()
        self.opened = 0

    def call(self, method: Callable[[Any], Any]) -> Any:
        """``method(catalog)`` on a kept client, or on a new one."""
        with self._lock:
            kept = self._idle.pop() if self._idle else None
        if kept is not None:
            try:
                return self._on(kept, method)
            except _ANSWERED:
                raise
            except Exception as exc:  # the kept client had gone stale: once more on a new one
                log.info("router: a kept catalog client failed (%s); calling on a new one", type(exc).__name__)
        return self._on(self._open(), method)

    def close(self) -> None:
        """Close every idle client (the service is stopping)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client, _ in idle:
            _stop(client)

    def _open(self) -> tuple[TransientServiceRpcProxy, Any]:
        client = TransientServiceRpcProxy("catalog", self._config, timeout=self._timeout)
        proxy = client.start()
        self.opened += 1
        return client, proxy

    def _on(self, kept: tuple[TransientServiceRpcProxy, Any], method: Callable[[Any], Any]) -> Any:
        try:
            result = method(kept[1])
        except _ANSWERED:
            self._give_back(kept)
            raise
        except BaseException:
            _stop(kept[0])
            raise
        self._give_back(kept)
        return result

    def _give_back(self, kept: tuple[TransientServiceRpcProxy, Any]) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(kept)
                return
        _stop(kept[0])


#: what a call the catalog answered raises: its typed refusals, a method it does not have, and
#: any other error it sent back
_ANSWERED = (ServiceError, MethodNotFound, RemoteError)

_clients: dict[tuple[str, float], CatalogClients] = {}
_clients_lock = threading.Lock()


def _stop(client: TransientServiceRpcProxy) -> None:
    with contextlib.suppress(Exception):
        client.stop()


def clients(amqp_uri: str, timeout: float) -> CatalogClients:
    """This process's kept clients for ``amqp_uri`` (one set, whatever asks)."""
    with _clients_lock:
        found = _clients.get((amqp_uri, timeout))
        if found is None:
            found = _clients[(amqp_uri, timeout)] = CatalogClients(amqp_uri, timeout)
        return found


def close_all() -> None:
    """Close the kept clients of every broker (the router is stopping)."""
    with _clients_lock:
        kept = list(_clients.values())
    for found in kept:
        found.close()


def _call(amqp_uri: str) -> Callable[[Callable[[Any], Any]], Any]:
    return clients(amqp_uri, config.env_float("CATALOG_TIMEOUT", 3.0, "router")).call


def resolver(amqp_uri: str) -> Callable[[str], str] | None:
    """``catalog.resolve_agency`` with a timeout (nameko's RpcProxy has none), or None when
    ``CATALOG_FALLBACK`` is off."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    call = _call(amqp_uri)

    def resolve(code: str) -> str:
        return call(lambda catalog: catalog.resolve_agency(code))["code"]

    return resolve


def agency_lister(amqp_uri: str) -> Callable[[], list[dict]] | None:
    """Every agency of the catalog, dissolved ones included (``list_agencies`` page by page,
    ``AGENCY_SYNC_PAGES`` pages of 100 at most), or None when ``CATALOG_FALLBACK`` is off."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    timeout = config.env_float("CATALOG_TIMEOUT", 3.0, "router")
    max_pages = config.env_int("AGENCY_SYNC_PAGES", 1000, "router")

    def list_all() -> list[dict]:
        agencies: list[dict] = []
        with TransientClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
            for page in range(1, max_pages + 1):
                answer = proxy.catalog.list_agencies(include_dissolved=True, page=page, page_size=100)
                agencies.extend(answer["items"])
                if not answer["items"] or page * 100 >= answer["total"]:
                    break
        return agencies

    return list_all


class CachedCatalog:
    """The catalog's read RPCs that ``chain_step`` makes, each answer kept ``ttl_s`` seconds
    by its own arguments (``call`` runs one method against the catalog on a miss).

    A procedure's answer does not depend on the applicant's place, so it is kept by its code:
    the many procedures that feed no other one cost one RPC per ``ttl_s``, not one per place
    their applicants live in. Only a chained procedure asks for agencies, once per province
    for all of its wards (``agencies_by_ward``). A miss goes to the catalog (``CatalogClients``)."""

    def __init__(self, call: Callable[[Callable[[Any], Any]], Any], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self._call = call
        self._cache = TtlCache(ttl_s, clock)

    def get_procedure(self, code: str) -> Any:
        return self._cache.get(("procedure", code), lambda: self._call(lambda catalog: catalog.get_procedure(code)))

    def agencies_for(self, code: str, province: Any = None, ward: Any = None) -> Any:
        """A ward's agencies from its province's table (``agencies_by_ward``, one call for all
        of its wards); the catalog's answer for this one place otherwise (no province or ward,
        a ward the table does not list, a catalog without that call)."""
        if province not in (None, "") and ward not in (None, ""):
            table = self._cache.get(("agencies", code, str(province), "*"), lambda: self._table(code, province))
            found = ward_agencies(table, ward) if table is not None else None
            if found is not None:
                return found
        return self._cache.get(("agencies", code, str(province), str(ward)),
                               lambda: self._call(lambda catalog: catalog.agencies_for(code, province=province,
                                                                                      ward=ward)))

    def _table(self, code: str, province: Any) -> dict | None:
        return load_ward_table(lambda: self._call(lambda catalog: catalog.agencies_by_ward(code, province)))


_catalogs: dict[tuple[str, float], CachedCatalog] = {}


def _catalog(amqp_uri: str) -> CachedCatalog:
    """This process's kept answers of the catalog at ``amqp_uri`` (one set for every finder:
    the chain's and the field's lookups of a procedure are one call)."""
    ttl, call = config.env_float("CATALOG_CACHE", 60.0, "router"), _call(amqp_uri)
    with _clients_lock:
        found = _catalogs.get((amqp_uri, ttl))
        if found is None:
            found = _catalogs[(amqp_uri, ttl)] = CachedCatalog(call, ttl)
        return found


def chain_finder(amqp_uri: str) -> Callable[[str, Any, Any], dict | None] | None:
    """``(procedure, province, ward) -> {procedure, agency} | None`` from the catalog's
    ``next_procedure`` and ``agencies_for``, or None when ``CATALOG_FALLBACK`` is off.
    Answers are kept ``CATALOG_CACHE`` seconds (``CachedCatalog``): a catalog amendment shows
    after that."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    catalog = _catalog(amqp_uri)

    def next_step(procedure_code: str, province: Any, ward: Any) -> dict | None:
        return chain_step(catalog, procedure_code, province, ward)
    return next_step


def field_finder(amqp_uri: str) -> Callable[[str], str | None] | None:
    """``procedure code -> field code`` from ``catalog.get_procedure`` (kept with the chain's
    answers), so subscriptions can filter on the field; None when ``CATALOG_FALLBACK`` is off."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    catalog = _catalog(amqp_uri)

    def field_of(procedure_code: str) -> str | None:
        procedure = catalog.get_procedure(procedure_code)
        value = procedure.get("field") if isinstance(procedure, dict) else None
        if isinstance(value, dict):
            value = value.get("code")
        return str(value) if value else None

    return field_of
