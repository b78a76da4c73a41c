"""Endpoints of the public lookup of a dossier by code."""

from __future__ import annotations


class LookupRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""
