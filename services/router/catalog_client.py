"""The router's client of the catalog's RPCs, beside its events: an agency the local copy has
never seen (``resolver``), and the next step of a liên thông chain (``chain_finder``).

A procedure whose result feeds another one names it in the catalog (``next_procedure``:
its code and the kind of agency that implements it). For a submitted dossier the router
looks that agency up for the applicant's place and tells the receiving agency where the
dossier goes next. ``chain_step`` is a plain function over any object with the catalog's RPC
methods, so it runs the same against the real service and in tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from portal_common import config


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


def resolver(amqp_uri: str) -> Callable[[str], str] | None:
    """``catalog.resolve_agency`` with a timeout (nameko's RpcProxy has none), or None when
    ``CATALOG_FALLBACK`` is off."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    timeout = config.env_float("CATALOG_TIMEOUT", 3.0, "router")

    def resolve(code: str) -> str:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
            return proxy.catalog.resolve_agency(code)["code"]

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
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
            for page in range(1, max_pages + 1):
                answer = proxy.catalog.list_agencies(include_dissolved=True, page=page, page_size=100)
                agencies.extend(answer["items"])
                if not answer["items"] or page * 100 >= answer["total"]:
                    break
        return agencies

    return list_all


def chain_finder(amqp_uri: str) -> Callable[[str, Any, Any], dict | None] | None:
    """``(procedure, province, ward) -> {procedure, agency} | None`` from the catalog's
    ``next_procedure`` and ``agencies_for``, or None when ``CATALOG_FALLBACK`` is off.
    Answers are kept ``CATALOG_CACHE`` seconds: a catalog amendment shows after that."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    timeout = config.env_float("CATALOG_TIMEOUT", 3.0, "router")
    cache = TtlCache(config.env_float("CATALOG_CACHE", 60.0, "router"))

    def next_step(procedure_code: str, province: Any, ward: Any) -> dict | None:
        def fetch() -> dict | None:
            with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
                return chain_step(proxy.catalog, procedure_code, province, ward)
        return cache.get((procedure_code, str(province), str(ward)), fetch)

    return next_step


def field_finder(amqp_uri: str) -> Callable[[str], str | None] | None:
    """``procedure code -> field code`` from ``catalog.get_procedure`` (cached like
    ``chain_finder``), so subscriptions can filter on the field; None when
    ``CATALOG_FALLBACK`` is off."""
    if not config.env_bool("CATALOG_FALLBACK", True, "router"):
        return None
    timeout = config.env_float("CATALOG_TIMEOUT", 3.0, "router")
    cache = TtlCache(config.env_float("CATALOG_CACHE", 60.0, "router"))

    def field_of(procedure_code: str) -> str | None:
        def fetch() -> str | None:
            with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
                procedure = proxy.catalog.get_procedure(procedure_code)
            value = procedure.get("field") if isinstance(procedure, dict) else None
            if isinstance(value, dict):
                value = value.get("code")
            return str(value) if value else None
        return cache.get(("field", procedure_code), fetch)

    return field_of
