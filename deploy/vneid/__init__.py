"""The local VNeID stand-in: an OpenID Connect provider for test identities (``python -m deploy.vneid``)."""
