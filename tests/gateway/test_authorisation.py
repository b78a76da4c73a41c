"""Every signed-in endpoint of the gateway, whoever declared it: no token is a 401, a token of
a role the endpoint does not name is a 403, both as problems, before any input is read.
(Agency scoping, the 404 for another agency's dossier, is the e2e agency-scope tests' job.)"""

from __future__ import annotations

import inspect
import re

import pytest
import requests

from gateway.http.auth import ROLES
from gateway.http.route import ApiRoute
from gateway.service import GatewayService
from tests.support import accounts

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _protected() -> list[ApiRoute]:
    out = []
    for _, method in inspect.getmembers(GatewayService, inspect.isfunction):
        out += [e for e in getattr(method, "nameko_entrypoints", ()) if isinstance(e, ApiRoute) and e.auth]
    return sorted(out, key=lambda e: (e.url, e.method))


def _url(base: str, rule: str) -> str:
    return base + re.sub(r"<(?:\w+:)?(\w+)>", "X-000000-0001", rule)


@pytest.fixture(scope="module")
def tokens(gateway_url) -> dict[str, str]:
    out = {"citizen": accounts.register_citizen(gateway_url)["access_token"]}
    for role, agency in (("officer", "G01.TEST"), ("agency_system", "G01.TEST"), ("editor", None),
                         ("operator", None)):
        try:
            out[role] = accounts.staff_token(gateway_url, role, agency)
        except AssertionError:  # a role the local stand-in does not issue
            continue
    return out


def test_there_are_protected_endpoints():
    routes = _protected()
    assert len(routes) >= 10
    assert all(set(r.auth) <= set(ROLES) for r in routes), [(r.url, r.auth) for r in routes]


@pytest.mark.parametrize("route", _protected(), ids=lambda r: f"{r.method} {r.url}")
def test_wrong_role_is_refused_and_no_token_is_unauthorised(gateway_url, tokens, route):
    url = _url(gateway_url, route.url)
    resp = requests.request(route.method, url, json={}, timeout=30)
    assert resp.status_code == 401 and resp.json()["code"] == "unauthorized", resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    wrong = [role for role in tokens if role not in route.auth]
    for role in wrong:
        resp = requests.request(route.method, url, json={}, timeout=30,
                                headers={"Authorization": f"Bearer {tokens[role]}"})
        assert resp.status_code == 403, (role, resp.status_code, resp.text[:300])
        assert resp.json()["code"] == "forbidden"
