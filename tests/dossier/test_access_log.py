"""The access log: agency staff's reads of a dossier are recorded, the owner sees who looked
(agency, role, an opaque staff reference), an operator sees the account ids, and the table
refuses to be changed. Through the running system, signed in as real accounts."""

from __future__ import annotations

import json
import uuid

import psycopg2
import pytest
from nameko.testing.services import worker_factory

from portal_common.db import Database
from portal_common.eventstore import EventStore
from services.dossier.application import Dossiers
from services.dossier.domain.access import staff_ref
from services.dossier.service import DossierService
from tests.dossier.conftest import agency_ctx, submit
from tests.dossier.test_http import _token, http
from tests.support import accounts
from tests.support.filings import first_office_filing

pytestmark = pytest.mark.integration

PROCEDURE = "1.001193"


def _staff(gateway_url: str, role: str, agency: str | None = None) -> dict:
    body = {"role": role, **({"agency_code": agency} if agency else {})}
    return accounts.call(f"{gateway_url}/api/v1/dev/tokens", "POST", body)


@pytest.fixture(scope="module")
def live_db(system, migrated_database):
    db = Database(migrated_database, "dossier", size=2)
    yield db
    db.close()


def _rows(db: Database, code: str) -> int:
    with db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT count(*) FROM access_log WHERE dossier_code = %s", (code,))
        return cur.fetchone()[0]


@pytest.fixture(scope="module")
def filed(gateway_url):
    """A dossier filed by a fresh citizen, with its agency's officer and agency system."""
    owner = accounts.register_citizen(gateway_url)
    filing = first_office_filing(gateway_url, PROCEDURE, "Lê Thị Riêng Tư")
    status, view, _ = http(f"{gateway_url}/api/v1/dossiers", "POST", filing, _token(owner))
    assert status == 201, view
    agency = filing["agency_code"]
    return {"code": view["code"], "agency": agency, "owner": owner, "view": view,
            "officer": _staff(gateway_url, "officer", agency), "system": _staff(gateway_url, "agency_system", agency)}


def test_staff_reads_are_listed_for_the_owner_newest_first_without_personal_ids(gateway_url, filed, live_db):
    base, code = f"{gateway_url}/api/v1", filed["code"]
    officer, owner = filed["officer"], _token(filed["owner"])
    doc = filed["view"]["inputs"][0]["id"]
    assert http(f"{base}/dossiers/{code}", token=owner)[0] == 200  # the owner's own reads: not logged
    assert http(f"{base}/dossiers/{code}/documents/{doc}", token=owner)[0] == 200
    assert http(f"{base}/agency/dossiers/{code}", token=officer["access_token"])[0] == 200
    status, _, _ = http(f"{base}/agency/dossiers/{code}/documents/{doc}", token=officer["access_token"])
    assert status == 200
    as_of = filed["view"]["submitted_at"]
    status, _, _ = http(f"{base}/agency/dossiers/{code}?as_of={as_of.replace('+', '%2B')}",
                        token=filed["system"]["access_token"])
    assert status == 200

    status, page, _ = http(f"{base}/dossiers/{code}/access-log", token=owner)
    assert status == 200, page
    assert page["total"] == 3 and page["page"] == 1
    past, document, view = page["items"]
    assert [e["access"] for e in page["items"]] == ["view", "document", "view"]
    assert past["role"] == "agency_system" and past["as_of"] and document["role"] == view["role"] == "officer"
    assert {e["agency"]["code"] for e in page["items"]} == {filed["agency"]}
    assert view["agency"]["name"] == filed["view"]["agency"]["name"]
    assert document["document"]["id"] == doc and view["document"] is None and view["as_of"] is None
    assert document["staff_ref"] == view["staff_ref"] == staff_ref(officer["account_id"])
    assert past["staff_ref"] != view["staff_ref"]
    assert past["at"] >= document["at"] >= view["at"]
    text = json.dumps(page)
    for secret in (officer["account_id"], filed["system"]["account_id"], filed["owner"]["account_id"]):
        assert secret not in text
    assert _rows(live_db, code) == 3

    status, second, _ = http(f"{base}/dossiers/{code}/access-log?page=2&page_size=2", token=owner)
    assert status == 200 and second["total"] == 3 and [e["access"] for e in second["items"]] == ["view"]


def test_the_owners_timeline_names_staff_by_reference_only(gateway_url):
    owner = accounts.register_citizen(gateway_url)
    filing = first_office_filing(gateway_url, PROCEDURE, "Lê Văn Dòng Thời Gian")
    status, view, _ = http(f"{gateway_url}/api/v1/dossiers", "POST", filing, _token(owner))
    assert status == 201, view
    base, code = f"{gateway_url}/api/v1", view["code"]
    officer = _staff(gateway_url, "officer", filing["agency_code"])
    status, _, _ = http(f"{base}/agency/dossiers/{code}/receive", "POST", {"note": "đủ hồ sơ"},
                        officer["access_token"])
    assert status == 200
    status, mine, _ = http(f"{base}/dossiers/{code}", token=_token(owner))
    assert status == 200
    received = [e for e in mine["timeline"] if e["event"] == "DossierReceived"]
    assert received and received[0]["actor"] == {"kind": "officer", "agency_code": filing["agency_code"],
                                                 "staff_ref": staff_ref(officer["account_id"])}
    assert officer["account_id"] not in json.dumps(mine)
    status, theirs, _ = http(f"{base}/agency/dossiers/{code}", token=officer["access_token"])
    assert status == 200  # the agency's own view keeps who of theirs did it
    theirs_received = next(e for e in theirs["timeline"] if e["event"] == "DossierReceived")
    assert theirs_received["actor"]["id"] == officer["account_id"]


def test_the_log_is_the_owners_alone(gateway_url, filed):
    base, code = f"{gateway_url}/api/v1", filed["code"]
    stranger = _token(accounts.register_citizen(gateway_url))
    s1, p1, _ = http(f"{base}/dossiers/{code}/access-log", token=stranger)
    s2, p2, _ = http(f"{base}/dossiers/{code[:-4]}9999/access-log", token=stranger)
    assert s1 == s2 == 404 and p1["code"] == p2["code"] == "dossier_not_found"
    assert http(f"{base}/dossiers/{code}/access-log", token=filed["officer"]["access_token"])[0] == 403


def test_another_agency_gets_404_and_nothing_is_logged(gateway_url, filed, live_db):
    base, code = f"{gateway_url}/api/v1", filed["code"]
    before = _rows(live_db, code)
    other = _staff(gateway_url, "officer", "NOT.THIS.AGENCY")["access_token"]
    doc = filed["view"]["inputs"][0]["id"]
    assert http(f"{base}/agency/dossiers/{code}", token=other)[0] == 404
    assert http(f"{base}/agency/dossiers/{code}/documents/{doc}", token=other)[0] == 404
    officer = filed["officer"]["access_token"]
    assert http(f"{base}/agency/dossiers/{code}/documents/{uuid.uuid4()}", token=officer)[0] == 404
    assert http(f"{base}/agency/dossiers/{code}?as_of=2000-01-01T00:00:00Z", token=officer)[0] == 404
    assert _rows(live_db, code) == before


def test_operator_sees_account_ids_and_request_ids(gateway_url, filed):
    base, code = f"{gateway_url}/api/v1", filed["code"]
    rid = f"access-log-{uuid.uuid4().hex}"
    status, _, _ = http(f"{base}/agency/dossiers/{code}", token=filed["officer"]["access_token"],
                        headers={"X-Request-Id": rid})
    assert status == 200
    operator = _staff(gateway_url, "operator")["access_token"]
    status, page, _ = http(f"{base}/ops/dossiers/{code}/access-log", token=operator)
    assert status == 200, page
    newest = page["items"][0]
    assert newest["request_id"] == rid and newest["account_id"] == filed["officer"]["account_id"]
    assert newest["role"] == "officer" and newest["agency"]["code"] == filed["agency"]
    assert newest["staff_ref"] == staff_ref(newest["account_id"])
    assert http(f"{base}/ops/dossiers/{code[:-4]}9999/access-log", token=operator)[0] == 404
    assert http(f"{base}/ops/dossiers/{code}/access-log", token=_token(filed["owner"]))[0] == 403


# -- the table, and the read failing with its record -------------------------------------


def _worker(repo: Dossiers):
    return worker_factory(DossierService, events=EventStore(repo.repository.db))


def _officer_context(agency: str = "H29.01") -> dict:
    return {"request_id": "req-1", "actor": {"kind": "officer", "id": f"officer-{agency}", "agency_code": agency}}


@pytest.mark.parametrize("statement", ["UPDATE access_log SET account_id = 'someone-else'",
                                       "DELETE FROM access_log", "TRUNCATE access_log"])
def test_database_refuses_changes_to_the_access_log(repo, statement):
    state, _ = submit(repo)
    _worker(repo).get(_officer_context(), state.code)
    with pytest.raises(psycopg2.Error) as caught, repo.repository.db.transaction() as cur:
        cur.execute(statement)
    assert caught.value.pgcode == "EV403" and "append-only" in str(caught.value)
    assert _rows(repo.repository.db, state.code) == 1


def test_owner_reads_and_refused_reads_write_nothing(repo):
    state, _ = submit(repo)
    worker = _worker(repo)
    worker.get({"actor": {"kind": "citizen", "id": "acc-1"}}, state.code)
    with pytest.raises(Exception, match="No dossier"):
        worker.get(_officer_context("OTHER.01"), state.code)
    assert _rows(repo.repository.db, state.code) == 0


def test_a_read_that_cannot_be_recorded_fails(repo):
    state, _ = submit(repo)
    caller, _ = agency_ctx()
    assert caller.can_see(state)
    with repo.repository.db.transaction() as cur:
        cur.execute("ALTER TABLE access_log ADD CONSTRAINT no_more CHECK (false) NOT VALID")
    worker = _worker(repo)
    with pytest.raises(psycopg2.errors.CheckViolation):
        worker.get(_officer_context(), state.code)
    with pytest.raises(psycopg2.errors.CheckViolation):
        worker.get_document(_officer_context(), state.code, state.inputs[0]["id"])
