"""Assurance levels: a procedure version can ask for VNeID level 2; a weaker sign-in is refused
with 403 ``assurance_level_too_low`` and nothing is written."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.accounts import register_citizen, staff_token
from tests.support.filings import first_office_filing
from tests.vneid.support import new_identity, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BASE_PROCEDURE = "1.001193"  # Đăng ký khai sinh: filed fully online at the commune
BODY_FIELDS = ("name", "field", "target", "levels", "agency_kinds", "processing_days", "online_level",
               "required_documents", "result_documents", "legal_bases", "description")


@pytest.fixture(scope="module")
def level_two_procedure(gateway_url) -> str:
    """A copy of a seeded procedure that an editor publishes asking for level 2."""
    editor = staff_token(gateway_url, "editor")
    base = requests.get(f"{gateway_url}/api/v1/procedures/{BASE_PROCEDURE}", timeout=30).json()
    code = f"VN2-{uuid.uuid4().hex[:8]}"
    body = {k: base[k] for k in BODY_FIELDS if k in base}
    resp = requests.post(f"{gateway_url}/api/v1/procedures", json={**body, "code": code, "min_assurance_level": 1},
                         headers={"Authorization": f"Bearer {editor}"}, timeout=30)
    assert resp.status_code == 201, resp.text
    amended = requests.put(f"{gateway_url}/api/v1/procedures/{code}", json={"min_assurance_level": 2},
                           headers={"Authorization": f"Bearer {editor}"}, timeout=30)
    assert amended.status_code == 200, amended.text
    assert amended.json()["changed"] == ["min_assurance_level"]
    published = requests.get(f"{gateway_url}/api/v1/procedures/{code}", timeout=30).json()
    assert published["min_assurance_level"] == 2 and published["version"] == 2
    return code


def _file(gateway_url: str, token: str, code: str) -> requests.Response:
    filing = first_office_filing(gateway_url, code, "Nguyễn Văn Thử")
    return requests.post(f"{gateway_url}/api/v1/dossiers", json=filing, timeout=30,
                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})


def _my_dossiers(gateway_url: str, token: str) -> list:
    resp = requests.get(f"{gateway_url}/api/v1/dossiers", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body.get("items", body) if isinstance(body, dict) else body


def test_level_one_is_refused_and_nothing_is_written(gateway_url, level_two_procedure):
    person = new_identity(gateway_url, level=1)
    token = sign_in(gateway_url, person["cccd"]).json()["access_token"]
    resp = _file(gateway_url, token, level_two_procedure)
    assert resp.status_code == 403, resp.text
    problem = resp.json()
    assert problem["code"] == "assurance_level_too_low"
    assert (problem["required_level"], problem["assurance_level"]) == (2, 1)
    assert _my_dossiers(gateway_url, token) == []


def test_a_password_sign_in_without_vneid_is_refused(gateway_url, level_two_procedure):
    citizen = register_citizen(gateway_url)
    resp = _file(gateway_url, citizen["access_token"], level_two_procedure)
    assert resp.status_code == 403 and resp.json()["assurance_level"] == 0
    assert _my_dossiers(gateway_url, citizen["access_token"]) == []


def test_level_two_is_accepted(gateway_url, level_two_procedure):
    person = new_identity(gateway_url, level=2)
    token = sign_in(gateway_url, person["cccd"]).json()["access_token"]
    resp = _file(gateway_url, token, level_two_procedure)
    assert resp.status_code == 201, resp.text
    assert len(_my_dossiers(gateway_url, token)) == 1


def test_a_procedure_without_a_level_takes_any_sign_in(gateway_url):
    person = new_identity(gateway_url, level=1)
    token = sign_in(gateway_url, person["cccd"]).json()["access_token"]
    assert _file(gateway_url, token, BASE_PROCEDURE).status_code == 201


def _acr(token: str):
    import base64
    import json

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("acr")


def test_the_level_belongs_to_the_session_not_to_a_later_password_sign_in(gateway_url, level_two_procedure):
    from tests.support.accounts import sign_in as password_sign_in

    citizen = register_citizen(gateway_url)
    requests.post(f"{gateway_url}/api/v1/dev/vneid-identities", json={
        "cccd": citizen["cccd"], "full_name": citizen["full_name"], "date_of_birth": citizen["date_of_birth"],
        "gender": citizen["gender"], "phone": citizen["phone"], "level": 2}, timeout=30).raise_for_status()
    problem = sign_in(gateway_url, citizen["cccd"]).json()
    linked = requests.post(f"{gateway_url}/api/v1/auth/vneid/link", json={
        "link_token": problem["link_token"], "method": "password", "password": citizen["password"]}, timeout=30)
    assert linked.status_code == 200 and _acr(linked.json()["access_token"]) == "2"
    me = requests.get(f"{gateway_url}/api/v1/me", timeout=30,
                      headers={"Authorization": f"Bearer {linked.json()['access_token']}"}).json()
    assert me["assurance_level"] == 2

    refreshed = requests.post(f"{gateway_url}/api/v1/auth/refresh",
                              json={"refresh_token": linked.json()["refresh_token"]}, timeout=30).json()
    assert _acr(refreshed["access_token"]) == "2"  # a refreshed VNeID session keeps its level

    by_password = password_sign_in(gateway_url, citizen["cccd"], citizen["password"], citizen["phone"])
    assert _acr(by_password["access_token"]) is None
    refused = _file(gateway_url, by_password["access_token"], level_two_procedure)
    assert refused.status_code == 403 and refused.json()["code"] == "assurance_level_too_low"
    assert _file(gateway_url, refreshed["access_token"], level_two_procedure).status_code == 201
