"""The identity entrypoints stay thin: each hands its arguments to the right flow (nameko
``worker_factory`` with the dependencies replaced by mocks)."""

from __future__ import annotations

from unittest import mock

from nameko.testing.services import worker_factory

from services.identity.application import certificates, signin
from services.identity.service import IdentityService


def test_login_dispatches_on_method():
    service = worker_factory(IdentityService)
    with mock.patch.object(certificates, "login", return_value={"via": "certificate"}) as cert, \
            mock.patch.object(signin, "start_password", return_value={"via": "password"}) as pwd:
        assert service.login({"method": "certificate"}) == {"via": "certificate"}
        assert service.login({"method": "password"}) == {"via": "password"}
        assert service.login("not a dict") == {"via": "password"}  # the flow refuses it with a 422
    assert cert.call_count == 1 and pwd.call_count == 2


def test_jwks_and_rotation_use_the_key_ring():
    service = worker_factory(IdentityService)
    service.keys.jwks.return_value = {"keys": [{"kid": "k1"}]}
    service.keys.rotate.return_value = "k2"
    assert service.jwks() == {"keys": [{"kid": "k1"}]}
    assert service.rotate_signing_key() == {"kid": "k2"}
