"""The minimum others build on: a citizen registers and signs in, staff get dev tokens, the
key set is published and the gateway accepts the tokens."""

from __future__ import annotations

import pytest

from tests.support import accounts
from tests.support.accounts import GatewayError, call

pytestmark = pytest.mark.integration


def test_register_citizen_and_me(gateway_url):
    person = accounts.register_citizen(gateway_url)
    for key in ("access_token", "refresh_token", "cccd", "password", "phone", "account_id"):
        assert person[key]
    me = call(f"{gateway_url}/api/v1/me", token=person["access_token"])
    assert me["account_id"] == person["account_id"]
    assert me["cccd"] == person["cccd"] and me["role"] == "citizen"
    assert "argon2" not in str(me) and person["password"] not in str(me)


@pytest.mark.parametrize(("role", "agency"), [("officer", "P51-STP"), ("agency_system", "P51-STP"),
                                              ("editor", None), ("operator", None)])
def test_staff_tokens(gateway_url, role, agency):
    token = accounts.staff_token(gateway_url, role, agency)
    me = call(f"{gateway_url}/api/v1/me", token=token)
    assert me["role"] == role and me["agency_code"] == agency


def test_agency_roles_need_an_agency(gateway_url):
    with pytest.raises(GatewayError) as err:
        accounts.staff_token(gateway_url, "officer")
    assert err.value.status == 422
    with pytest.raises(GatewayError) as err:
        accounts.staff_token(gateway_url, "citizen")
    assert err.value.status == 422


def test_jwks_is_published(gateway_url):
    keys = call(f"{gateway_url}/.well-known/jwks.json")["keys"]
    assert keys and all(k["kty"] == "OKP" and k["kid"] and "d" not in k for k in keys)
