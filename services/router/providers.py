"""nameko dependency giving each worker the ``Router`` use cases (one AMQP channel per process)."""

from __future__ import annotations

from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from portal_common import config
from portal_common.eventstore import EventStore
from portal_common.nameko_ext import Storage
from services.router.catalog import TtlCache, chain_step
from services.router.channels import AmqpChannel, HttpChannel
from services.router.delivery import Router, Settings


class RouterDeps(Storage):
    """The router's pool, log, delivery channels and settings."""

    def setup(self) -> None:
        super().setup()
        amqp_uri = self.container.config.get("AMQP_URI") or config.amqp_uri("router")
        self.router = Router(
            self.db, EventStore(self.db),
            AmqpChannel(amqp_uri,
                        config.env("AGENCY_EXCHANGE", "agency.deliveries", "router") or "agency.deliveries",
                        config.env_float("PUBLISH_TIMEOUT", 10.0, "router")),
            HttpChannel(config.env_float("CALLBACK_TIMEOUT", 10.0, "router")),
            Settings.from_env(),
            resolve_remote=self._catalog_resolver(amqp_uri),
            next_step=self._chain_finder(amqp_uri),
        )

    @staticmethod
    def _catalog_resolver(amqp_uri: str):
        """``catalog.resolve_agency`` with a timeout (nameko's RpcProxy has none), or None
        when ``CATALOG_FALLBACK`` is off."""
        if not config.env_bool("CATALOG_FALLBACK", True, "router"):
            return None
        timeout = config.env_float("CATALOG_TIMEOUT", 3.0, "router")

        def resolve(code: str) -> str:
            with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
                return proxy.catalog.resolve_agency(code)["code"]

        return resolve

    @staticmethod
    def _chain_finder(amqp_uri: str):
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

    def stop(self) -> None:
        self.router.amqp.close()
        super().stop()

    def kill(self) -> None:
        self.router.amqp.close()

    def get_dependency(self, worker_ctx) -> Router:
        return self.router
