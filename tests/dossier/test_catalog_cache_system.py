"""The dossier service's catalog cache against the running system: an editor's amendment
and withdrawal reach every dossier process as catalog events, so a new dossier records the
new version and a withdrawn procedure is refused within a few seconds, although the answers
before them were cached."""

from __future__ import annotations

import time
import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.catalog.conftest import procedure_payload
from tests.dossier.test_http import _token, http
from tests.support import accounts
from tests.support.filings import first_office_filing

WAIT_S = 10.0


@pytest.fixture(scope="module")
def editor(gateway_url) -> str:
    return _token(accounts.staff_token(gateway_url, "editor"))


@pytest.fixture(scope="module")
def citizen(gateway_url) -> str:
    return _token(accounts.register_citizen(gateway_url))


def _submit(gateway_url: str, token: str, filing: dict):
    return http(f"{gateway_url}/api/v1/dossiers", "POST", filing, token, {"Idempotency-Key": uuid.uuid4().hex})


def _until(submit, accept, what: str):
    """Submit until ``accept(status, body)`` holds; fail after WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body, _ = submit()
        if accept(status, body):
            return status, body
        assert time.monotonic() < deadline, f"{what} not seen within {WAIT_S} s: {status} {body}"
        time.sleep(0.2)


def test_amendment_and_withdrawal_reach_the_cached_submission_checks(gateway_url, editor, citizen):
    code = f"CC-{uuid.uuid4().hex[:10]}"
    payload = procedure_payload(code, name=f"Thủ tục thử nghiệm bộ nhớ đệm {code}", target="both")
    status, out, _ = http(f"{gateway_url}/api/v1/procedures", "POST", payload, editor)
    assert status == 201 and out["version"] == 1, out
    filing = first_office_filing(gateway_url, code, "Trần Văn Đệm")

    def submit():
        return _submit(gateway_url, citizen, filing)

    for _ in range(3):  # the first asks the catalog, the others may be answered from the cache
        status, created, _ = submit()
        assert status == 201 and created["procedure"]["version"] == 1, created

    status, out, _ = http(f"{gateway_url}/api/v1/procedures/{code}", "PUT", {"processing_days": 4}, editor)
    assert status == 200 and out["version"] == 2, out
    _, created = _until(submit, lambda s, b: s == 201 and b["procedure"]["version"] == 2, "the new version")
    assert created["procedure"]["processing_days"] == 4
    status, again, _ = submit()  # and it stays there
    assert status == 201 and again["procedure"]["version"] == 2

    status, out, _ = http(f"{gateway_url}/api/v1/procedures/{code}/withdraw", "POST", {"reason": "Bãi bỏ"}, editor)
    assert status == 200 and out["status"] == "withdrawn", out
    status, problem = _until(submit, lambda s, b: s != 201, "the withdrawal")
    assert status == 422 and problem["code"] == "unknown_procedure", problem
    for _ in range(3):  # refused from then on
        status, problem, _ = submit()
        assert status == 422 and problem["code"] == "unknown_procedure"


def test_filings_from_two_wards_of_a_province_ask_the_catalog_once(gateway_url, amqp_uri, editor, citizen):
    """The dossier service keeps one ``agencies_by_ward`` table per procedure and province: a
    filing from a second ward of the province is answered from it, so the cache counts no miss
    (asking per ward, as before the table, would count one)."""
    code = f"CW-{uuid.uuid4().hex[:10]}"
    payload = procedure_payload(code, name=f"Thủ tục thử nghiệm theo xã {code}", target="both")
    status, out, _ = http(f"{gateway_url}/api/v1/procedures", "POST", payload, editor)
    assert status == 201, out
    filing = first_office_filing(gateway_url, code, "Trần Văn Phường")
    province = filing["applicant"]["province"]
    status, found, _ = http(f"{gateway_url}/api/v1/provinces/{province}")
    assert status == 200 and len(found["wards"]) >= 2, found
    first, second = (dict(filing, applicant=dict(filing["applicant"], ward=str(w["code"])))
                     for w in found["wards"][:2])
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as cluster:
        status, created, _ = _submit(gateway_url, citizen, first)
        assert status == 201, created
        before = cluster.dossier.health()["catalog_cache"]
        status, created, _ = _submit(gateway_url, citizen, second)
        assert status == 201, created
        after = cluster.dossier.health()["catalog_cache"]
    assert after["misses"] == before["misses"], (before, after)
    assert after["hits"] >= before["hits"] + 2, (before, after)  # the procedure and the province's table
