"""The gateway service: every public endpoint, as mixins from ``gateway.routes``.

Run it with ``nameko run --config gateway/config.yml gateway.service:GatewayService``.
"""

from __future__ import annotations

from gateway.http.rpc import ServiceRpc
from gateway.routes.agency import AgencyRoutes
from gateway.routes.catalog import CatalogRoutes
from gateway.routes.dev import DevRoutes
from gateway.routes.dossiers import DossierRoutes
from gateway.routes.identity import IdentityRoutes
from gateway.routes.lookup import LookupRoutes
from gateway.routes.ops import OpsRoutes
from portal_common.logs import LogContext


class GatewayService(
    OpsRoutes, CatalogRoutes, IdentityRoutes, DevRoutes, DossierRoutes, LookupRoutes, AgencyRoutes
):
    name = "gateway"

    identity_rpc = ServiceRpc("identity")
    catalog_rpc = ServiceRpc("catalog")
    dossier_rpc = ServiceRpc("dossier")
    router_rpc = ServiceRpc("router")
    log_context = LogContext()
