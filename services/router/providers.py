"""nameko dependency giving each worker the router's use cases (``application.Router``), wired
to this process's pool, event log, delivery channels and catalog client (one AMQP channel per
process)."""

from __future__ import annotations

from portal_common import config
from portal_common.eventstore import EventStore
from portal_common.nameko_ext import Storage
from services.router import catalog_client
from services.router.application import Router
from services.router.channels import AmqpChannel, HttpChannel
from services.router.settings import Settings


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
            resolve_remote=catalog_client.resolver(amqp_uri),
            next_step=catalog_client.chain_finder(amqp_uri),
        )

    def stop(self) -> None:
        self.router.amqp.close()
        super().stop()

    def kill(self) -> None:
        self.router.amqp.close()

    def get_dependency(self, worker_ctx) -> Router:
        return self.router
