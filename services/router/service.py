"""nameko entrypoints of the router service: each one line calling ``application.Router``.

Dossier events become deliveries to agency back offices; catalog events keep the local
agency copy that successor routing reads; a timer drives due retries; RPCs let operators
change routes and handle dead letters (``ops.py`` wraps them) and agencies read and
acknowledge their intake. Input checks, transactions and the work are in ``application.py``;
the rules in ``domain/``; SQL in ``repository.py`` and ``queries.py``.
"""

from __future__ import annotations

from portal_common import config
from portal_common.entrypoints import event_handler, rpc
from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import Outbox
from portal_common.ticks import timer
from services.router.application import Router
from services.router.providers import RouterDeps

TICK_S = config.env_float("DELIVERY_TICK", 1.0, "router")
AGENCY_SYNC_TICK_S = config.env_float("AGENCY_SYNC_TICK", 10.0, "router")


class RouterService(HealthRpc):
    name = "router"

    router: Router = RouterDeps()
    outbox = Outbox()
    log_context = LogContext()

    @property
    def db(self):
        return self.router.db

    # -- dossier events -> deliveries --------------------------------------------------

    @event_handler("dossier", "DossierSubmitted")
    def on_submitted(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierForwarded")
    def on_forwarded(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierSupplemented")
    def on_supplemented(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierWithdrawn")
    def on_withdrawn(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    # -- the other dossier events: agency feed and subscriptions only ------------------

    @event_handler("dossier", "DossierReceived")
    def on_received(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierRefused")
    def on_refused(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierProcessingStarted")
    def on_processing_started(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "SupplementRequested")
    def on_supplement_requested(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierPaused")
    def on_paused(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierResumed")
    def on_resumed(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DeadlineExtended")
    def on_deadline_extended(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierResultReady")
    def on_result_ready(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierResultReturned")
    def on_result_returned(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierRejected")
    def on_rejected(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierBecameOverdue")
    def on_became_overdue(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierPaymentRequested")
    def on_payment_requested(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierPaymentReceived")
    def on_payment_received(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierPaymentExpired")
    def on_payment_expired(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "DossierReceiptAttached")
    def on_receipt_attached(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "FeeExemptionDeclared")
    def on_fee_exemption_declared(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    @event_handler("dossier", "FeeExemptionDisputed")
    def on_fee_exemption_disputed(self, envelope: dict) -> None:
        self.router.take_dossier_event(envelope)

    # -- catalog events -> local agency copy -------------------------------------------

    @event_handler("catalog", "AgencyRegistered")
    def on_agency_registered(self, envelope: dict) -> None:
        self.router.on_agency_event(envelope)

    @event_handler("catalog", "AgencyAmended")
    def on_agency_amended(self, envelope: dict) -> None:
        self.router.on_agency_event(envelope)

    @event_handler("catalog", "AgencyDissolved")
    def on_agency_dissolved(self, envelope: dict) -> None:
        self.router.on_agency_event(envelope)

    @timer(interval=AGENCY_SYNC_TICK_S, eager=True)
    def sync_agencies(self) -> None:
        self.router.agency_sync.run_if_due()

    # -- retries -----------------------------------------------------------------------

    @timer(interval=TICK_S)
    def retry_due(self) -> None:
        self.router.run_due()

    @timer(interval=TICK_S)
    def deliver_subscriptions(self) -> None:
        self.router.run_subscriptions()

    # -- RPC: routing table ------------------------------------------------------------

    @rpc
    def configure_route(self, context: dict | None, route: dict) -> dict:
        return self.router.configure_route(context, route)

    @rpc
    def list_routes(self) -> list[dict]:
        return self.router.list_routes()

    @rpc
    def secret_status(self, agency_code: str) -> dict:
        """Where the route's signing secret comes from (file, env, missing); never its value."""
        return self.router.secret_status(agency_code)

    # -- RPC: deliveries and dead letters ----------------------------------------------

    @rpc
    def deliveries_for(self, dossier_code: str) -> list[dict]:
        return self.router.deliveries_for(dossier_code)

    @rpc
    def list_dead_letters(self, agency_code: str | None = None, limit: int = 100) -> list[dict]:
        return self.router.dead_letters(agency_code, limit)

    @rpc
    def redeliver(self, delivery_id: str, context: dict | None = None) -> dict:
        return self.router.redeliver(delivery_id, context)

    @rpc
    def redeliver_all(self, agency_code: str | None = None, context: dict | None = None) -> list[dict]:
        return self.router.redeliver_all(agency_code, context)

    @rpc
    def acknowledge(self, delivery_id: str, agency_code: str) -> dict:
        return self.router.acknowledge(delivery_id, agency_code)

    @rpc
    def agency_deliveries(self, agency_code: str, status: str | None = None, dossier_code: str | None = None,
                          limit: int = 100) -> list[dict]:
        """One agency's own intake (the gateway passes the caller's agency, never a chosen one)."""
        return self.router.agency_deliveries(agency_code, status, dossier_code, limit)

    @rpc
    def delivery_stats(self) -> dict:
        return self.router.delivery_stats()

    # -- RPC: agency subscriptions, feed and delivery keys -------------------------------

    @rpc
    def create_subscription(self, context: dict | None, agency_code: str, body: dict) -> dict:
        return self.router.create_subscription(context, agency_code, body)

    @rpc
    def list_subscriptions(self, agency_code: str | None = None) -> list[dict]:
        """One agency's subscriptions (the gateway passes the caller's agency); None: all, for operators."""
        return self.router.subs.list(agency_code)

    @rpc
    def get_subscription(self, agency_code: str | None, subscription_id: str) -> dict:
        return self.router.subs.get(agency_code, subscription_id)

    @rpc
    def end_subscription(self, context: dict | None, agency_code: str | None, subscription_id: str) -> dict:
        return self.router.end_subscription(context, agency_code, subscription_id)

    @rpc
    def agency_events(self, agency_code: str, after: int = 0, limit: int = 100, wait: float = 0) -> dict:
        return self.router.subs.read(agency_code, after, limit, wait)

    @rpc
    def delivery_keys(self) -> dict:
        return self.router.keys.jwks()

    @rpc
    def subscription_status(self) -> list[dict]:
        return self.router.subs.status()

    @rpc
    def pause_subscription(self, context: dict | None, subscription_id: str) -> dict:
        return self.router.pause_subscription(context, subscription_id, True)

    @rpc
    def resume_subscription(self, context: dict | None, subscription_id: str) -> dict:
        return self.router.pause_subscription(context, subscription_id, False)

    @rpc
    def redeliver_subscription(self, context: dict | None, subscription_id: str, from_position: int) -> dict:
        return self.router.redeliver_subscription(context, subscription_id, from_position)

    @rpc
    def subscription_dead_letters(self, subscription_id: str, limit: int = 100) -> list[dict]:
        return self.router.subs.dead_letters(subscription_id, limit)
