"""Endpoints of the catalog part of API.md: procedures, agencies, life events, fields."""

from __future__ import annotations


class CatalogRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""
