"""The gateway service: every public endpoint, as mixins from ``gateway.routes``.

Run it with ``nameko run --config gateway/config.yml gateway.service:GatewayService``.

Besides the endpoints, each gateway process listens to identity's revocation events on a queue
of its own (``BROADCAST``, not kept when the process stops: a starting gateway reads the
current revocations over RPC instead), so a signed-out session's access tokens are refused
at once (``gateway.http.revocations``).
"""

from __future__ import annotations

from nameko.events import BROADCAST, event_handler

from gateway.http.rpc import ServiceRpc
from gateway.http.tokens import RevocationFeed
from gateway.routes.agency import AgencyRoutes
from gateway.routes.agency_feed import AgencyFeedRoutes
from gateway.routes.catalog import CatalogRoutes
from gateway.routes.dev import DevRoutes
from gateway.routes.dossiers import DossierRoutes
from gateway.routes.identity import IdentityRoutes
from gateway.routes.lookup import LookupRoutes
from gateway.routes.ops import OpsRoutes
from gateway.routes.payments import PaymentRoutes
from gateway.routes.vneid import VneidRoutes
from portal_common.heap import StartupHeapFrozen
from portal_common.logs import LogContext


class GatewayService(
    OpsRoutes, CatalogRoutes, IdentityRoutes, DevRoutes, DossierRoutes, LookupRoutes, PaymentRoutes, AgencyRoutes,
    VneidRoutes, AgencyFeedRoutes,
):
    name = "gateway"

    identity_rpc = ServiceRpc("identity")
    catalog_rpc = ServiceRpc("catalog")
    dossier_rpc = ServiceRpc("dossier")
    router_rpc = ServiceRpc("router")
    payment_rpc = ServiceRpc("payment")
    log_context = LogContext()
    revocation_feed = RevocationFeed()
    startup_heap = StartupHeapFrozen()

    @event_handler("identity", "SignedOut", handler_type=BROADCAST, reliable_delivery=False)
    def on_signed_out(self, envelope: dict) -> None:
        self.revocation_feed.apply(envelope)

    @event_handler("identity", "PasswordChanged", handler_type=BROADCAST, reliable_delivery=False)
    def on_password_changed(self, envelope: dict) -> None:
        self.revocation_feed.apply(envelope)

    @event_handler("identity", "AgencySystemRevoked", handler_type=BROADCAST, reliable_delivery=False)
    def on_agency_system_revoked(self, envelope: dict) -> None:
        self.revocation_feed.apply(envelope)

    @event_handler("identity", "StaffAccountDisabled", handler_type=BROADCAST, reliable_delivery=False)
    def on_staff_account_disabled(self, envelope: dict) -> None:
        self.revocation_feed.apply(envelope)
