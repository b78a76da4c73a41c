"""nameko entrypoints of the payment service: one line each, into ``application.Payments``.

Dossier events open charges (DossierPaymentRequested) and trigger refunds (refused, withdrawn
before processing); RPCs serve the gateway (what is due, start a payment, the platform's
notification, the local platform's endpoints) and the dossier service (a receipt's PDF) and
operators (refund, reconcile, mismatches); timers drive the periodic work.
"""

from __future__ import annotations

from typing import Any

from portal_common import config
from portal_common.context import event_context
from portal_common.entrypoints import event_handler, rpc
from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import EventLog, Outbox
from portal_common.ticks import timer
from services.payment import settings
from services.payment.application import Payments

EXPIRY_INTERVAL = config.env_float("PAYMENT_EXPIRY_INTERVAL", 60.0, "payment")


class PaymentService(HealthRpc):
    name = "payment"

    events = EventLog()
    outbox = Outbox()
    log_context = LogContext()

    @property
    def db(self):
        return self.events.db

    @property
    def app(self) -> Payments:
        return Payments(self.events.db, self.events)

    # -- dossier events ----------------------------------------------------------------

    @event_handler("dossier", "DossierPaymentRequested")
    def on_payment_requested(self, envelope: dict) -> None:
        self.app.on_dossier_event(envelope)

    @event_handler("dossier", "DossierProcessingStarted")
    def on_processing_started(self, envelope: dict) -> None:
        self.app.on_dossier_event(envelope)

    @event_handler("dossier", "DossierRefused")
    def on_refused(self, envelope: dict) -> None:
        self.app.on_dossier_event(envelope)

    @event_handler("dossier", "DossierWithdrawn")
    def on_withdrawn(self, envelope: dict) -> None:
        self.app.on_dossier_event(envelope)

    # -- the gateway -------------------------------------------------------------------

    @rpc
    def dossier_payments(self, context: dict, code: str) -> dict:
        return self.app.dossier_payments(context, code)

    @rpc
    def create_payment(self, context: dict, code: str, fee_ids: list | None = None,
                       idempotency_key: str | None = None) -> dict:
        return self.app.create_payment(context, code, fee_ids, idempotency_key)

    @rpc
    def notify(self, fields: Any, context: dict | None = None) -> dict:
        return self.app.notify(fields, context)

    @rpc
    def receipt_pdf(self, payment_id: str) -> dict:
        return self.app.receipt_pdf(payment_id)

    # -- operators ---------------------------------------------------------------------

    @rpc
    def refund(self, payment_id: str, reason: str, context: dict | None = None) -> dict:
        return self.app.request_refund(payment_id, reason, event_context(context))

    @rpc
    def reconcile(self, day: str) -> dict:
        return self.app.reconcile(day)

    @rpc
    def mismatches(self, day: str | None = None) -> list:
        return self.app.mismatches(day)

    @rpc
    def expire_due(self, as_of: str | None = None) -> list:
        """Expire the charges due before ``as_of`` (a day; today by default)."""
        return self.app.expire_due(as_of)

    @rpc
    def check_pending(self, as_of: str | None = None) -> list:
        """Ask the platform about the payments that are pending past the time-out at ``as_of``."""
        return self.app.check_pending(as_of)

    # -- the local stand-in platform (LOCAL_ADAPTERS) ------------------------------------

    @rpc
    def platform_complete(self, payment_id: str, outcome: str) -> dict:
        return self.app.platform_complete(payment_id, outcome)

    @rpc
    def platform_settlements(self, day: str) -> dict:
        return self.app.platform_settlements(day)

    @rpc
    def platform_page(self, fields: dict) -> dict:
        return self.app.platform_page(fields)

    @rpc
    def platform_api(self, body: Any) -> dict:
        return self.app.platform_api(body)

    # -- timers ------------------------------------------------------------------------

    @timer(interval=settings.TICK_S)
    def tick(self) -> None:
        self.app.tick()

    @timer(interval=EXPIRY_INTERVAL)
    def expire(self) -> list:
        return self.app.expire_due()

