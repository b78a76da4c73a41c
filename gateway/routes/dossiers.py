"""Endpoints of the dossier part of API.md (signed in as the applicant)."""

from __future__ import annotations


class DossierRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""
