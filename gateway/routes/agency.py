"""Endpoints of the agency back-office part of API.md."""

from __future__ import annotations


class AgencyRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""
