"""Gateway endpoints, one module per part of API.md; each is a mixin of the gateway service."""
