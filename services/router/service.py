"""nameko entrypoints of the router service (thin: the work is in the modules beside it).

Dossier events become deliveries to agency back offices (``delivery.Router``); catalog
events keep the local agency copy that successor routing reads; a timer drives due retries;
RPCs let operators change routes and handle dead letters (``ops.py`` wraps them).
"""

from __future__ import annotations

import logging
from typing import Any

from marshmallow import Schema, ValidationError
from nameko.timer import timer

from portal_common import config
from portal_common.consumer import handle_once
from portal_common.context import event_context
from portal_common.entrypoints import event_handler, rpc
from portal_common.errors import InvalidInput
from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import Outbox
from services.router import repository, schemas
from services.router.delivery import Router
from services.router.domain import Route
from services.router.providers import RouterDeps

log = logging.getLogger(__name__)
TICK_S = config.env_float("DELIVERY_TICK", 1.0, "router")


def _load(schema: Schema, data: Any) -> dict:
    try:
        return schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise InvalidInput("invalid_input", "the request does not match its schema", exc.messages) from None


class RouterService(HealthRpc):
    name = "router"

    router: Router = RouterDeps()
    outbox = Outbox()
    log_context = LogContext()

    @property
    def db(self):
        return self.router.db

    # -- dossier events -> deliveries --------------------------------------------------

    def _on_dossier(self, envelope: dict) -> None:
        if not isinstance(envelope, dict) or "event_id" not in envelope:
            log.warning("router: dropping a dossier message without an event id")
            return
        self.router.learn_agency(envelope)
        chain = self.router.chain_hint(envelope)
        _, ids = handle_once(self.router.db, "router.dossier", envelope,
                             lambda cur, env: self.router.route(cur, env, chain, lease=True))
        for delivery_id in ids or []:
            try:
                self.router.attempt(delivery_id, leased=True)
            except Exception:  # the timer retries it
                log.exception("router: first attempt of %s failed unexpectedly", delivery_id)

    @event_handler("dossier", "DossierSubmitted")
    def on_submitted(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @event_handler("dossier", "DossierForwarded")
    def on_forwarded(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @event_handler("dossier", "DossierSupplemented")
    def on_supplemented(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @event_handler("dossier", "DossierWithdrawn")
    def on_withdrawn(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    # -- catalog events -> local agency copy -------------------------------------------

    def _on_agency(self, envelope: dict) -> None:
        if isinstance(envelope, dict) and "event_id" in envelope:
            handle_once(self.router.db, "router.catalog", envelope, self.router.mirror_agency)

    @event_handler("catalog", "AgencyRegistered")
    def on_agency_registered(self, envelope: dict) -> None:
        self._on_agency(envelope)

    @event_handler("catalog", "AgencyAmended")
    def on_agency_amended(self, envelope: dict) -> None:
        self._on_agency(envelope)

    @event_handler("catalog", "AgencyDissolved")
    def on_agency_dissolved(self, envelope: dict) -> None:
        self._on_agency(envelope)

    # -- retries -----------------------------------------------------------------------

    @timer(interval=TICK_S)
    def retry_due(self) -> None:
        self.router.run_due()

    # -- RPC: routing table ------------------------------------------------------------

    @rpc
    def configure_route(self, context: dict | None, route: dict) -> dict:
        data = _load(schemas.RouteInput(), route)
        return self.router.configure_route(Route(**data), event_context(context))

    @rpc
    def list_routes(self) -> list[dict]:
        with self.db.transaction() as cur:
            return schemas.RouteOut(many=True).dump(repository.list_routes(cur))

    @rpc
    def secret_status(self, agency_code: str) -> dict:
        """Where the route's signing secret comes from (file, env, missing); never its value."""
        code = _load(schemas.AgencyCodeInput(), {"agency_code": agency_code})["agency_code"]
        return self.router.secret_status(code)

    # -- RPC: deliveries and dead letters ----------------------------------------------

    @rpc
    def deliveries_for(self, dossier_code: str) -> list[dict]:
        code = _load(schemas.DossierCodeInput(), {"dossier_code": dossier_code})["dossier_code"]
        with self.db.transaction() as cur:
            return schemas.DeliveryOut(many=True).dump(repository.deliveries_for(cur, code))

    @rpc
    def list_dead_letters(self, agency_code: str | None = None, limit: int = 100) -> list[dict]:
        query = _load(schemas.DeadLetterQuery(), {"agency_code": agency_code, "limit": limit})
        with self.db.transaction() as cur:
            rows = repository.dead_letters(cur, query["agency_code"], query["limit"])
        return schemas.DeliveryOut(many=True).dump(rows)

    @rpc
    def redeliver(self, delivery_id: str, context: dict | None = None) -> dict:
        data = _load(schemas.DeliveryIdInput(), {"delivery_id": delivery_id})
        return self.router.redeliver(str(data["delivery_id"]), event_context(context))

    @rpc
    def redeliver_all(self, agency_code: str | None = None, context: dict | None = None) -> list[dict]:
        query = _load(schemas.DeadLetterQuery(), {"agency_code": agency_code, "limit": 1000})
        with self.db.transaction() as cur:
            ids = [str(r["delivery_id"]) for r in repository.dead_letters(cur, query["agency_code"], 1000)]
        return [self.router.redeliver(i, event_context(context)) for i in ids]

    @rpc
    def acknowledge(self, delivery_id: str, agency_code: str) -> dict:
        data = _load(schemas.AcknowledgeInput(), {"delivery_id": delivery_id, "agency_code": agency_code})
        return self.router.acknowledge(str(data["delivery_id"]), data["agency_code"])

    @rpc
    def agency_deliveries(self, agency_code: str, status: str | None = None, dossier_code: str | None = None,
                          limit: int = 100) -> list[dict]:
        """One agency's own intake (the gateway passes the caller's agency, never a chosen one)."""
        query = _load(schemas.AgencyDeliveriesQuery(), {"agency_code": agency_code, "status": status,
                                                        "dossier_code": dossier_code, "limit": limit})
        with self.db.transaction() as cur:
            rows = repository.agency_deliveries(cur, query["agency_code"], query["status"], query["dossier_code"],
                                                query["limit"])
        return schemas.DeliveryOut(many=True).dump(rows)

    @rpc
    def delivery_stats(self) -> dict:
        with self.db.transaction() as cur:
            return repository.counts(cur)
