"""The gateway's agency endpoints take the agency from the token, never from the request: a
staff token that names none may see nothing."""

from __future__ import annotations

import pytest

from gateway.http.auth import Principal
from gateway.http.route import ApiCall
from gateway.routes.agency import _agency, _context
from portal_common.errors import Forbidden


def _call(agency: str | None) -> ApiCall:
    return ApiCall(request=None, request_id="r-1", principal=Principal("acc-1", "officer", "", agency))


def test_the_agency_comes_from_the_token():
    assert _agency(_call("W00025-UBND")) == "W00025-UBND"


@pytest.mark.parametrize("agency", [None, ""])
def test_a_staff_token_without_an_agency_is_refused(agency):
    for use in (_agency, _context):
        with pytest.raises(Forbidden) as refused:
            use(_call(agency))
        assert refused.value.code == "no_agency"
