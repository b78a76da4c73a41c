"""HTTP plumbing of the gateway: routes, problems, auth, limits, OpenAPI."""

from gateway.http.route import ApiCall, api

__all__ = ["ApiCall", "api"]
