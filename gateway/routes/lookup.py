"""Endpoints of the public lookup of a dossier by code."""

from __future__ import annotations

from gateway.http.route import ApiCall, api


class LookupRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("GET", "/api/v1/lookup/<code>", summary="Public status of a dossier by its code (nothing personal)",
         tags=("lookup",), rate_limit="lookup", responses={404: "Unknown code"})
    def lookup_dossier(self, call: ApiCall, code: str):
        return self.dossier_rpc.lookup(code)
