"""Endpoints of the local stand-ins of API.md (only when LOCAL_ADAPTERS is on)."""

from __future__ import annotations


class DevRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""
