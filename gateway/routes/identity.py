"""Endpoints of the identity part of API.md: registration, sign-in, tokens, me, JWKS."""

from __future__ import annotations


class IdentityRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""
