"""``bench submit --places N``: the applicants' places it files from, on the running system's
catalog. Each must be one the filing's agency serves, or every filing would be refused."""

from __future__ import annotations

import uuid

import pytest

from bench.submit import _citizen_token, _filing, _filing_and_agency, _places
from bench.support import request_json

pytestmark = pytest.mark.integration


def _served(gateway_url: str, procedure: str, place: dict[str, str]) -> set[str]:
    status, found = request_json(f"{gateway_url}/api/v1/procedures/{procedure}/agencies"
                                 f"?province={place['province']}&ward={place['ward']}")
    assert status == 200, found
    items = found.get("items", found) if isinstance(found, dict) else found
    return {a["code"] for a in items}


def test_the_places_are_distinct_wards_the_filing_s_agency_serves(gateway_url):
    filing, agency = _filing_and_agency(gateway_url)
    places = _places(gateway_url, agency, 12)
    assert agency["level"] in ("central", "province")  # the seed's first agency is not a commune's
    assert len(places) == 12
    assert len({(p["province"], p["ward"]) for p in places}) == 12
    for place in places:
        assert agency["code"] in _served(gateway_url, filing["procedure_code"], place)


def test_one_place_or_a_commune_s_agency_keeps_the_filing_s_own_place(gateway_url):
    _, agency = _filing_and_agency(gateway_url)
    assert _places(gateway_url, agency, 1) == []
    assert _places(gateway_url, dict(agency, level="commune"), 50) == []


def test_the_filing_the_other_benchmarks_send_is_accepted_as_it_is(gateway_url):
    """``bench scale`` and ``bench load`` post ``_filing``'s body unchanged: nothing of the
    benchmark's own may ride along in it."""
    token = _citizen_token(gateway_url)
    status, body = request_json(f"{gateway_url}/api/v1/dossiers", "POST", _filing(gateway_url),
                                {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, body
