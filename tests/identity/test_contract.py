"""The gateway's identity contract: every identity path of API.md is served and documented,
and the local stand-ins exist only when configured."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from portal_common.errors import NotFound
from services.identity import settings as identity_settings
from services.identity.application import stand_ins

API_PATHS = [
    ("post", "/api/v1/auth/register/mobile"), ("post", "/api/v1/auth/register/mobile/confirm"),
    ("post", "/api/v1/auth/register/bhxh"), ("post", "/api/v1/auth/challenge"),
    ("post", "/api/v1/auth/register/certificate"), ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/login/confirm"), ("post", "/api/v1/auth/refresh"), ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/me"), ("get", "/.well-known/jwks.json"),
    ("get", "/api/v1/dev/sms-outbox"), ("post", "/api/v1/dev/carrier-records"),
    ("post", "/api/v1/dev/bhxh-records"), ("post", "/api/v1/dev/tokens"),
]


@pytest.mark.integration
def test_every_identity_path_is_in_the_openapi_document(api):
    spec = api("GET", "/openapi.json").body
    for method, path in API_PATHS:
        assert method in spec["paths"].get(path, {}), (method, path)


def test_dev_routes_are_absent_without_local_adapters(monkeypatch):
    import gateway.routes.dev as routes

    monkeypatch.delenv("LOCAL_ADAPTERS", raising=False)
    monkeypatch.delenv("GATEWAY_LOCAL_ADAPTERS", raising=False)
    off = importlib.reload(routes)
    assert not [name for name in vars(off.DevRoutes) if name.startswith("dev_")]
    monkeypatch.setenv("LOCAL_ADAPTERS", "yes")
    on = importlib.reload(routes)
    assert {"dev_token", "dev_sms_outbox", "dev_carrier_record", "dev_bhxh_record"} <= set(vars(on.DevRoutes))
    monkeypatch.delenv("LOCAL_ADAPTERS")
    importlib.reload(routes)


def test_identity_refuses_dev_calls_without_local_adapters():
    settings = dataclasses.replace(identity_settings.load(), local_adapters=False)
    with pytest.raises(NotFound):
        stand_ins.dev_token(None, None, None, settings, {"role": "editor"}, None)
    with pytest.raises(NotFound):
        stand_ins.trusted_ca(settings, None, {"certificate_pem": "x"})
