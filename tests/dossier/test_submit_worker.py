"""Unit tests of the dossier service's submit and act workers (worker_factory).

The catalog RPC proxy is replaced by a mock (this is a unit test of one worker); the event
log is the real one, on a schema of this test's own, so what the worker writes is checked
in PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime as dt
from unittest.mock import Mock

import pytest
from nameko.testing.services import worker_factory

from portal_common.errors import Conflict, InvalidInput, NotFound
from services.dossier.catalog_cache import CatalogCache
from services.dossier.domain.codes import parse_code, stream_id
from services.dossier.service import DossierService
from tests.dossier.conftest import agency_ctx

PDF = base64.b64encode(b"%PDF-1.4 test").decode()
PROCEDURE = {
    "code": "1.001234", "version": 7, "name": "Business household registration", "processing_days": 3,
    "status": "active", "online_level": "full",
    "required_documents": [{"id": "form", "name": "Registration form", "mandatory": True},
                           {"id": "id-card", "name": "ID card copy", "mandatory": True},
                           {"id": "lease", "name": "Lease", "mandatory": False}],
}
AGENCIES = [{"code": "W.00001", "name": "Ward 1 People's Committee", "level": "commune"}]


def citizen(account: str = "acc-1") -> dict:
    return {"request_id": "r-1", "client_ip": "127.0.0.1",
            "actor": {"kind": "citizen", "id": account, "agency_code": None, "subject": "001090000001"}}


def officer(agency: str = "W.00001") -> dict:
    return {"request_id": "r-2", "actor": {"kind": "officer", "id": "o-1", "agency_code": agency}}


def filing(**overrides) -> dict:
    body = {"procedure_code": "1.001234", "agency_code": "W.00001",
            "applicant": {"full_name": "Tran Thi B", "province": "01", "ward": "00001",
                          "date_of_birth": "1990-05-01"},
            "form": {"business_name": "Pho Bo", "capital_vnd": 50_000_000},
            "documents": [{"requirement": "form", "name": "form.pdf", "content_type": "application/pdf",
                           "content_base64": PDF},
                          {"requirement": "id-card", "name": "id.pdf", "content_type": "application/pdf",
                           "content_base64": PDF}]}
    body.update(overrides)
    return body


@pytest.fixture
def worker(repo):
    catalog = Mock()
    catalog.get_procedure.return_value = PROCEDURE
    catalog.agencies_for.return_value = AGENCIES
    catalog.resolve_agency.side_effect = lambda code: {"code": "W.00001"} if code == "OLD.1" else {"code": code}
    catalog.get_agency.side_effect = lambda code: (
        {"code": code, "name": "Province department", "level": "province"} if code == "P.01" else None)
    # the catalog cache off (not set up): every check reaches the mock
    return worker_factory(DossierService, events=repo.log, catalog=catalog, catalog_cache=CatalogCache())


def test_submit_records_the_procedure_version_and_applicant_area(worker, repo):
    view = worker.submit(citizen(), filing(), "key-1")
    assert view["created"] is True and view["status"] == "submitted"
    assert parse_code(view["code"])[0] == "W.00001"
    assert view["procedure"] == {"code": "1.001234", "version": 7, "name": "Business household registration",
                                 "processing_days": 3}
    worker.catalog.agencies_for.assert_called_with("1.001234", province="01", ward="00001")
    [event] = repo.log.read_stream(stream_id(view["code"]))
    assert event.data["applicant"]["date_of_birth"] == "1990-05-01"
    assert {d["requirement"] for d in event.data["documents"]} == {"form", "id-card"}
    assert event.metadata["actor"] == {"kind": "citizen", "id": "acc-1", "agency_code": None}
    again = worker.submit(citizen(), filing(), "key-1")
    assert again["code"] == view["code"] and again["created"] is False


def test_missing_documents_and_wrong_agency_are_all_listed(worker, repo):
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(agency_code="X.999", documents=[]), None)
    assert refused.value.code == "filing_incomplete"
    fields = {p["field"] for p in refused.value.details}
    assert fields == {"documents.form", "documents.id-card", "agency_code"}
    with repo.repository.db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT count(*) FROM events")
        assert cur.fetchone()[0] == 0


def test_unknown_procedure_is_refused(worker):
    worker.catalog.get_procedure.side_effect = NotFound("procedure_not_found", "no")
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(), None)
    assert refused.value.code == "unknown_procedure"


def test_dissolved_agency_is_replaced_by_its_successor(worker):
    view = worker.submit(citizen(), filing(agency_code="OLD.1"), None)
    assert view["agency"]["code"] == "W.00001"


def test_forward_asks_the_catalog_for_the_target(worker):
    view = worker.submit(citizen(), filing(), None)
    code = view["code"]
    worker.act(officer(), code, "receive", {})
    with pytest.raises(InvalidInput) as unknown:
        worker.act(officer(), code, "forward", {"to_agency_code": "NOPE", "reason": "inter-agency"})
    assert unknown.value.code == "unknown_agency"
    forwarded = worker.act(officer(), code, "forward", {"to_agency_code": "P.01", "reason": "inter-agency"})
    assert forwarded["status"] == "forwarded" and forwarded["agency"]["code"] == "P.01"
    assert worker.get(officer("P.01"), code)["agencies"] == ["W.00001", "P.01"]


def test_oversized_document_is_refused(worker, monkeypatch):
    monkeypatch.setenv("DOSSIER_MAX_DOCUMENT_BYTES", "8")
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(), None)
    assert refused.value.details[0]["message"].startswith("larger than")


@pytest.mark.parametrize("actor", [
    {"kind": "officer", "id": "o-2", "agency_code": None},  # an officer token without an agency
    {"kind": "editor", "id": "e-1", "agency_code": None},
    {"kind": "operator", "id": "op-1", "agency_code": "W.00001"},
    None,
])
def test_callers_that_are_neither_owner_nor_agency_see_nothing(worker, actor):
    code = worker.submit(citizen(), filing(), None)["code"]
    context = {"request_id": "r-3", "actor": actor}
    with pytest.raises(NotFound):
        worker.get(context, code)
    with pytest.raises(NotFound):
        worker.act(context, code, "receive", {})
    with pytest.raises(NotFound):
        worker.withdraw(context, code, {})
    with pytest.raises(NotFound):
        worker.get_document(context, code, "00000000-0000-4000-8000-000000000000")
    assert worker.list_mine(context)["total"] == 0
    assert worker.agency_queue(context)["total"] == 0


def test_the_timer_marks_dossiers_past_their_appointment(worker, repo):
    code = worker.submit(citizen(), filing(), None)["code"]
    caller, ctx = agency_ctx("W.00001")
    long_ago = dt.datetime(2025, 1, 6, 3, tzinfo=dt.UTC)
    repo.execute(code, "receive", {}, caller, ctx, now=long_ago)
    assert worker.mark_overdue() == [code]
    assert worker.mark_overdue() == []
    view = worker.get(officer(), code)
    assert view["overdue"] is True and view["timeline"][-1]["event"] == "DossierBecameOverdue"
    assert view["timeline"][-1]["actor"]["kind"] == "system"


@pytest.mark.parametrize("key", ["", "k" * 201, "bad\nkey", "tab\tkey"])
def test_malformed_idempotency_keys_are_refused(worker, repo, key):
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(), key)
    assert refused.value.code == "invalid_idempotency_key"
    assert repo.log.head_position() == 0


def test_a_retry_is_answered_from_the_first_submission_even_if_the_catalog_changed(worker, repo):
    first = worker.submit(citizen(), filing(), "key-retry")
    worker.catalog.get_procedure.side_effect = NotFound("procedure_not_found", "withdrawn meanwhile")
    again = worker.submit(citizen(), filing(), "key-retry")
    assert again["code"] == first["code"] and again["created"] is False
    with pytest.raises(Conflict) as reused:  # same key, different filing: refused before the catalog is asked
        worker.submit(citizen(), filing(form={"business_name": "Bun Cha"}), "key-retry")
    assert reused.value.code == "idempotency_key_reused"
    assert repo.log.head_position() == 1


@pytest.mark.parametrize(("level", "applicant", "missing"), [
    ("commune", {"full_name": "A"}, {"applicant.province", "applicant.ward"}),
    ("commune", {"full_name": "A", "province": "01"}, {"applicant.ward"}),
    ("province", {"full_name": "A"}, {"applicant.province"}),
])
def test_a_local_agency_needs_the_applicants_area(worker, repo, level, applicant, missing):
    worker.catalog.agencies_for.return_value = [dict(AGENCIES[0], level=level)]
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(applicant=applicant, documents=[]), None)
    fields = {p["field"] for p in refused.value.details}
    assert fields == missing | {"documents.form", "documents.id-card"}  # everything listed at once
    assert repo.log.head_position() == 0


def test_a_central_agency_serves_everyone(worker):
    worker.catalog.agencies_for.return_value = [{"code": "W.00001", "name": "Ministry", "level": "central"}]
    assert worker.submit(citizen(), filing(applicant={"full_name": "A"}), None)["status"] == "submitted"


def test_my_list_filters_are_checked(worker):
    code = worker.submit(citizen(), filing(), None)["code"]
    assert [i["code"] for i in worker.list_mine(citizen(), procedure_code="1.001234")["items"]] == [code]
    assert worker.list_mine(citizen("acc-2"))["total"] == 0
    for bad in ({"submitted_from": "yesterday"}, {"procedure_code": "x" * 5000}, {"status": "lost"},
                {"page": 0}, {"colour": "red"}):
        with pytest.raises(InvalidInput):
            worker.list_mine(citizen(), **bad)


def test_a_procedure_not_offered_online_is_refused(worker, repo):
    worker.catalog.get_procedure.return_value = dict(PROCEDURE, online_level="none")
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(), None)
    assert refused.value.code == "not_filed_online" and refused.value.details[0]["field"] == "procedure_code"
    assert repo.log.head_position() == 0
    worker.catalog.get_procedure.return_value = dict(PROCEDURE, online_level="partial")
    assert worker.submit(citizen(), filing(), None)["status"] == "submitted"


@pytest.mark.parametrize("code", [12345, None, ["A-260302-0001"], {"code": 1}, "x" * 10_000, "A-260302-0001\x00"])
def test_codes_of_the_wrong_type_are_simply_not_found(worker, code):
    with pytest.raises(NotFound):
        worker.get(citizen(), code)
    with pytest.raises(NotFound):
        worker.lookup(code)
    with pytest.raises(NotFound):
        worker.act(officer(), code, "receive", {})


def test_hostile_queue_and_action_arguments_are_refused(worker):
    code = worker.submit(citizen(), filing(), None)["code"]
    for bad in ({"status": "lost"}, {"page": "one"}, {"page_size": 10_000}, {"overdue": "perhaps"}):
        with pytest.raises(InvalidInput):
            worker.agency_queue(officer(), **bad)
    for action in (["receive"], {"a": 1}, 7, "receive\n"):
        with pytest.raises(NotFound) as unknown:
            worker.act(officer(), code, action, {})
        assert unknown.value.code == "unknown_action"
    for body in ([1, 2], "reason", 42):
        with pytest.raises(InvalidInput):
            worker.act(officer(), code, "refuse", body)
    assert worker.agency_queue(officer(), status="submitted")["items"][0]["code"] == code
    assert worker.agency_queue(citizen())["total"] == 0


def test_with_the_catalog_cache_on_the_checks_ask_once_until_a_catalog_event(worker):
    cache = CatalogCache(ttl=60, max_size=100)
    cache.setup()
    worker.catalog_cache = cache
    first = worker.submit(citizen(), filing(), "cache-1")
    second = worker.submit(citizen(), filing(), "cache-2")
    assert first["procedure"]["version"] == second["procedure"]["version"] == 7
    assert (worker.catalog.get_procedure.call_count, worker.catalog.agencies_for.call_count) == (1, 1)

    worker.catalog.get_procedure.return_value = dict(PROCEDURE, version=8)
    worker.on_procedure_amended({"event_id": "e-1", "data": {"code": "1.001234", "version": 8}})
    assert worker.submit(citizen(), filing(), "cache-3")["procedure"]["version"] == 8

    worker.catalog.get_procedure.side_effect = NotFound("procedure_withdrawn", "withdrawn")
    worker.on_procedure_withdrawn({"event_id": "e-2", "data": {"code": "1.001234", "version": 8}})
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(), "cache-4")
    assert refused.value.code == "unknown_procedure"

    worker.catalog.get_procedure.side_effect = None
    worker.catalog.agencies_for.return_value = []  # the agency was dissolved
    worker.on_agency_dissolved({"event_id": "e-3", "data": {"code": "W.00001", "successor": "W.2"}})
    with pytest.raises(InvalidInput) as refused:
        worker.submit(citizen(), filing(), "cache-5")
    assert refused.value.code == "filing_incomplete"


@pytest.mark.parametrize("hostile", [
    {"applicant": {"full_name": "An\ud800", "province": "01", "ward": "00001"}},
    {"form": {"ghi_chu": "x\udfff"}},
    {"form": {"so_tien": float("nan")}},
    {"form": {"so_tien": float("inf")}},
], ids=["surrogate-name", "surrogate-form", "nan", "infinity"])
def test_hostile_values_from_any_rpc_caller_are_refused_and_write_nothing(worker, repo, hostile):
    """The gateway refuses these first; a caller reaching the service directly gets the same
    typed refusal, not an encoding error from the event store."""
    with pytest.raises(InvalidInput):
        worker.submit(citizen("acc-hostile"), filing(**hostile), "key-hostile")
    with repo.repository.db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM events WHERE stream_type = 'dossier' "
                    "AND metadata->'actor'->>'id' = 'acc-hostile'")
        assert cur.fetchone()["n"] == 0
