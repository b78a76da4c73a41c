"""nameko dependency giving each worker the router's use cases (``application.Router``), wired
to this process's pool, event log, delivery channels and catalog client (one AMQP channel per
process)."""

from __future__ import annotations

from portal_common import config
from portal_common.eventstore import EventStore
from portal_common.nameko_ext import Storage
from services.router import catalog_client
from services.router.agency_sync import AgencySync
from services.router.application import Router
from services.router.callbacks import CallbackClient, CallbackPolicy
from services.router.channels import AmqpChannel, HttpChannel
from services.router.delivery_keys import DeliveryKeys
from services.router.secrets import SecretStore
from services.router.settings import Settings
from services.router.subscriptions import Subscriptions


class RouterDeps(Storage):
    """The router's pool, log, delivery channels and settings."""

    def setup(self) -> None:
        super().setup()
        amqp_uri = self.container.config.get("AMQP_URI") or config.amqp_uri("router")
        store, settings, secrets = EventStore(self.db), Settings.from_env(), SecretStore.from_env()
        # where dataschema URLs point: the gateway's public address (its /asyncapi.json)
        public = config.env("PUBLIC_API_URL", None, "router") or \
            f"http://127.0.0.1:{config.env('GATEWAY_PORT', '8000') or '8000'}"
        subscriptions = Subscriptions(
            self.db, store, DeliveryKeys(secrets), CallbackClient(CallbackPolicy.from_env()), settings,
            schema_base=public, procedure_field=catalog_client.field_finder(amqp_uri),
            hold_s=config.env_float("FEED_HOLD", 5.0, "router"),
            alert_after_s=config.env_float("SUBSCRIPTION_ALERT_AFTER", 900.0, "router"),
            max_per_agency=config.env_int("SUBSCRIPTIONS_PER_AGENCY", 100, "router"),
            concurrency=config.env_int("SUBSCRIPTION_CONCURRENCY", 4, "router"))
        self.router = Router(
            self.db, store,
            AmqpChannel(amqp_uri,
                        config.env("AGENCY_EXCHANGE", "agency.deliveries", "router") or "agency.deliveries",
                        config.env_float("PUBLISH_TIMEOUT", 10.0, "router")),
            HttpChannel(config.env_float("CALLBACK_TIMEOUT", 10.0, "router")),
            settings, secrets,
            resolve_remote=catalog_client.resolver(amqp_uri),
            next_step=catalog_client.chain_finder(amqp_uri),
            subscriptions=subscriptions,
            agency_sync=AgencySync(self.db, catalog_client.agency_lister(amqp_uri),
                                   config.env_float("AGENCY_SYNC_INTERVAL", 600.0, "router")),
        )

    def stop(self) -> None:
        self.router.amqp.close()
        catalog_client.close_all()
        super().stop()

    def kill(self) -> None:
        self.router.amqp.close()
        catalog_client.close_all()

    def get_dependency(self, worker_ctx) -> Router:
        return self.router
