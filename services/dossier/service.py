"""nameko entrypoints of the dossier service: one line each, into ``application``.

RPCs that act for someone take the gateway's ``context`` (request id, client, actor) first;
the actor decides what the caller may see and becomes the events' ``actor`` metadata.
"""

from __future__ import annotations

from typing import Any

from nameko.events import BROADCAST

from portal_common import config
from portal_common.entrypoints import ReconnectingRpcProxy, event_handler, rpc
from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import EventLog, Outbox
from portal_common.ticks import timer
from services.dossier.application import Dossiers, Drafts, access, actions, drafts, on_postgres, payments
from services.dossier.application.filing import submit as submit_filing
from services.dossier.catalog_cache import CatalogCache

OVERDUE_INTERVAL = config.env_float("OVERDUE_INTERVAL", 60.0, "dossier")


def catalog_event(event_type: str):
    """A catalog event to every dossier process (a queue of its own, gone with the process)."""
    return event_handler("catalog", event_type, handler_type=BROADCAST, reliable_delivery=False)


class DossierService(HealthRpc):
    name = "dossier"

    events = EventLog()
    outbox = Outbox()
    log_context = LogContext()
    catalog = ReconnectingRpcProxy("catalog")
    payment = ReconnectingRpcProxy("payment")
    catalog_cache = CatalogCache()

    @property
    def db(self):
        return self.events.db

    @property
    def app(self) -> Dossiers:
        return on_postgres(self.events.db, self.events)

    def health_details(self) -> dict:
        """Added to the ``health`` RPC: this process's catalog cache (invalidations reach each)."""
        return {"catalog_cache": self.catalog_cache.stats()}

    @property
    def drafts(self) -> Drafts:
        return Drafts(self.app)

    @property
    def checked_catalog(self):
        """The catalog for a submission's checks: procedure and agencies from the cache."""
        return self.catalog_cache.wrap(self.catalog)

    @rpc
    def submit(self, context: dict, filing: dict, idempotency_key: str | None = None) -> dict:
        return submit_filing(self.app, self.checked_catalog, context, filing, idempotency_key)

    @rpc
    def get(self, context: dict, code: str, as_of: str | None = None) -> dict:
        return actions.get(self.app, context, code, as_of)

    @rpc
    def list_mine(self, context: dict, status: str | None = None, page: int = 1, page_size: int = 20,
                  **filters: Any) -> dict:
        return actions.list_mine(self.app, context, status, page, page_size, filters)

    @rpc
    def agency_queue(self, context: dict, status: str | None = None, overdue: bool | None = None,
                     page: int = 1, page_size: int = 20) -> dict:
        return actions.agency_queue(self.app, context, status, overdue, page, page_size)

    @rpc
    def lookup(self, code: str) -> dict:
        return self.app.lookup(code)

    @rpc
    def act(self, context: dict, code: str, action: str, body: dict | None = None) -> dict:
        return actions.act(self.app, self.catalog, context, code, action, body)

    @rpc
    def supplement(self, context: dict, code: str, body: dict) -> dict:
        return actions.applicant_action(self.app, context, code, "supplement", body)

    @rpc
    def withdraw(self, context: dict, code: str, body: dict | None = None) -> dict:
        return actions.applicant_action(self.app, context, code, "withdraw", body)

    @rpc
    def upload_document(self, context: dict, code: str, name: str, content_type: str, content_base64: str,
                        requirement: str | None = None) -> dict:
        return actions.upload(self.app, context, code, name, content_type, content_base64, requirement)

    @rpc
    def get_document(self, context: dict, code: str, document_id: str) -> dict[str, Any]:
        return actions.get_document(self.app, context, code, document_id)

    @rpc
    def owner_access_log(self, context: dict, code: str, page: int = 1, page_size: int = 20) -> dict:
        """The owner's view of who at the agencies read the dossier (newest first)."""
        return access.owner_view(self.app, context, code, page, page_size)

    @rpc
    def operator_access_log(self, context: dict, code: str, page: int = 1, page_size: int = 20) -> dict:
        """The operator's view of the same log, with staff account ids and request ids."""
        return access.operator_view(self.app, context, code, page, page_size)

    # -- drafts (before filing: no code yet) --------------------------------------------

    @rpc
    def save_draft(self, context: dict, body: dict, draft_id: str | None = None) -> dict:
        return drafts.save(self.drafts, context, body, draft_id)

    @rpc
    def get_draft(self, context: dict, draft_id: str) -> dict:
        return drafts.get(self.drafts, context, draft_id)

    @rpc
    def list_drafts(self, context: dict, status: str = "open", page: int = 1, page_size: int = 20) -> dict:
        return drafts.list_mine(self.drafts, context, status, page, page_size)

    @rpc
    def discard_draft(self, context: dict, draft_id: str) -> dict:
        return drafts.discard(self.drafts, context, draft_id)

    @rpc
    def submit_draft(self, context: dict, draft_id: str) -> dict:
        return drafts.submit(self.drafts, self.checked_catalog, context, draft_id)

    @rpc
    def get_draft_document(self, context: dict, draft_id: str, document_id: str) -> dict[str, Any]:
        return drafts.document(self.drafts, context, draft_id, document_id)

    # -- catalog events -> cached catalog answers dropped (every process: broadcast) ----

    @catalog_event("ProcedurePublished")
    def on_procedure_published(self, envelope: dict) -> None:
        self.catalog_cache.on_event("ProcedurePublished", envelope)

    @catalog_event("ProcedureDrafted")
    def on_procedure_drafted(self, envelope: dict) -> None:
        self.catalog_cache.on_event("ProcedureDrafted", envelope)

    @catalog_event("ProcedureAmended")
    def on_procedure_amended(self, envelope: dict) -> None:
        self.catalog_cache.on_event("ProcedureAmended", envelope)

    @catalog_event("ProcedureWithdrawn")
    def on_procedure_withdrawn(self, envelope: dict) -> None:
        self.catalog_cache.on_event("ProcedureWithdrawn", envelope)

    @catalog_event("AgencyRegistered")
    def on_agency_registered(self, envelope: dict) -> None:
        self.catalog_cache.on_event("AgencyRegistered", envelope)

    @catalog_event("AgencyAmended")
    def on_agency_amended(self, envelope: dict) -> None:
        self.catalog_cache.on_event("AgencyAmended", envelope)

    @catalog_event("AgencyDissolved")
    def on_agency_dissolved(self, envelope: dict) -> None:
        self.catalog_cache.on_event("AgencyDissolved", envelope)

    # -- payment events -> the waiting dossier moves on, expires, gets its receipt ------

    @event_handler("payment", "PaymentSucceeded")
    def on_payment_succeeded(self, envelope: dict) -> None:
        payments.on_payment_succeeded(self.app, envelope)

    @event_handler("payment", "PaymentExpired")
    def on_payment_expired(self, envelope: dict) -> None:
        payments.on_payment_expired(self.app, envelope)

    @event_handler("payment", "ReceiptIssued")
    def on_receipt_issued(self, envelope: dict) -> None:
        payments.on_receipt_issued(self.app, self.payment, envelope)

    @timer(interval=OVERDUE_INTERVAL)
    def mark_overdue(self) -> list[str]:
        return self.app.mark_overdue()
