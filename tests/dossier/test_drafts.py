"""Drafts on real PostgreSQL, through the dossier service's workers (catalog mocked).

Saved → submitted (the dossier it became) or discarded; only the owner sees a draft; filing a
draft runs the submission checks and closes the draft in the same transaction, so a draft
becomes at most one dossier even under concurrent submits.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from nameko.testing.services import worker_factory

from portal_common.contracts import CATALOGUE
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventContext, EventSchemaError, NewEvent
from portal_common.eventstore.events import Actor
from services.dossier import queries
from services.dossier.application.drafts import stream_id as draft_stream
from services.dossier.catalog_cache import CatalogCache
from services.dossier.domain import drafts
from services.dossier.domain.codes import parse_code, stream_id
from services.dossier.service import DossierService
from tests.dossier.test_submit_worker import AGENCIES, PROCEDURE, citizen, filing, officer
from tests.support.threads import all_at_once

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x01" * 40).decode()
PDF = base64.b64encode(b"%PDF-1.4 draft form").decode()


@pytest.fixture
def worker(repo):
    from unittest.mock import Mock

    catalog = Mock()
    catalog.get_procedure.return_value = PROCEDURE
    catalog.agencies_for.return_value = AGENCIES
    catalog.resolve_agency.side_effect = lambda code: {"code": code}
    # the catalog cache off (not set up): every check reaches the mock
    return worker_factory(DossierService, events=repo.log, catalog=catalog, catalog_cache=CatalogCache())


def doc(requirement: str, content: str = PDF, name: str = "form.pdf", kind: str = "application/pdf") -> dict:
    return {"requirement": requirement, "name": name, "content_type": kind, "content_base64": content}


def test_save_read_list_and_resave_a_draft(worker, repo):
    draft = worker.save_draft(citizen(), {"procedure_code": "1.001234", "applicant": {"full_name": "Tran Thi B"},
                                          "documents": [doc("form")]})
    assert draft["status"] == "open" and draft["version"] == 1 and draft["agency_code"] is None
    assert [d["requirement"] for d in draft["documents"]] == ["form"] and len(draft["documents"][0]["sha256"]) == 64
    assert worker.get_draft(citizen(), draft["id"])["applicant"] == {"full_name": "Tran Thi B"}
    listed = worker.list_drafts(citizen())
    assert [i["id"] for i in listed["items"]] == [draft["id"]] and listed["items"][0]["documents"] == 1
    kept = draft["documents"][0]["id"]
    again = worker.save_draft(citizen(), {"procedure_code": "1.001234", "agency_code": "W.00001",
                                          "applicant": {"full_name": "Tran Thi B", "province": "01"},
                                          "document_ids": [kept], "documents": [doc("id-card", PNG, "id.png",
                                                                                    "image/png")],
                                          "version": 1}, draft["id"])
    assert again["version"] == 2 and [d["requirement"] for d in again["documents"]] == ["form", "id-card"]
    assert again["documents"][0]["id"] == kept
    fetched = worker.get_draft_document(citizen(), draft["id"], again["documents"][1]["id"])
    assert base64.b64decode(fetched["content_base64"]).startswith(b"\x89PNG")
    # an outdated version is refused and writes nothing
    with pytest.raises(Conflict) as stale:
        worker.save_draft(citizen(), {"form": {"x": 1}, "version": 1}, draft["id"])
    assert stale.value.code == "draft_changed"
    dropped = worker.save_draft(citizen(), {"procedure_code": "1.001234"}, draft["id"])
    assert dropped["documents"] == [] and dropped["version"] == 3
    types = [e.event_type for e in repo.log.read_stream(draft_stream(draft["id"]))]
    assert types == ["DossierDraftSaved"] * 3


def test_only_the_owner_sees_a_draft(worker):
    draft = worker.save_draft(citizen(), {"documents": [doc("form")]})
    for who in (citizen("acc-2"), officer(), {"actor": None}):
        for call in (lambda c: worker.get_draft(c, draft["id"]),
                     lambda c: worker.save_draft(c, {"form": {}}, draft["id"]),
                     lambda c: worker.discard_draft(c, draft["id"]),
                     lambda c: worker.submit_draft(c, draft["id"]),
                     lambda c: worker.get_draft_document(c, draft["id"], draft["documents"][0]["id"])):
            with pytest.raises(NotFound) as hidden:
                call(who)
            assert hidden.value.code == "draft_not_found"
    with pytest.raises(NotFound) as unknown:
        worker.get_draft(citizen(), str(uuid.uuid4()))
    assert unknown.value.code == hidden.value.code
    for bad in ("not-a-uuid", "'; DROP TABLE events; --", "x" * 5000):
        with pytest.raises(NotFound):
            worker.get_draft(citizen(), bad)
    assert worker.list_drafts(citizen("acc-2"))["total"] == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"applicant": {"full_name": "x" * 10_000}}, "applicant.full_name"),
    ({"procedure_code": "A\u0000B"}, "procedure_code"),
    ({"form": {"k": {"nested": True}}}, "form"),
    ({"documents": [doc("form", "@@@ not base64")]}, "documents.0.content_base64"),
    ({"documents": [doc("form", base64.b64encode(b"MZ\x90").decode())]}, "documents.0.content"),
    ({"document_ids": ["00000000-0000-4000-8000-000000000000"]}, "document_ids.0"),
    ({"documents": [doc("form")] * 20, "document_ids": ["a"] * 11}, "documents"),
    ({"version": "one"}, "version"),
    ({"fee_exemptions": [{"fee_id": "le-phi", "exemption": "Trẻ em"}] * 2}, "fee_exemptions"),
    ({"fee_exemptions": [{"fee_id": "le-phi"}]}, "fee_exemptions.0.exemption"),
    ({"fee_exemptions": [{"fee_id": "le-phi", "exemption": "Trẻ\u0000em"}]}, "fee_exemptions.0.exemption"),
    ({"fee_exemptions": "Trẻ em"}, "fee_exemptions"),
])
def test_hostile_drafts_are_refused_with_the_field(worker, repo, body, field):
    with pytest.raises(InvalidInput) as refused:
        worker.save_draft(citizen(), body)
    assert any(e["field"] == field for e in refused.value.details), refused.value.details
    assert repo.log.head_position() == 0


def test_open_drafts_are_bounded(worker, monkeypatch):
    monkeypatch.setenv("DOSSIER_MAX_OPEN_DRAFTS", "2")
    first = worker.save_draft(citizen(), {})
    worker.save_draft(citizen(), {})
    with pytest.raises(Conflict) as full:
        worker.save_draft(citizen(), {})
    assert full.value.code == "too_many_drafts"
    worker.discard_draft(citizen(), first["id"])
    assert worker.save_draft(citizen(), {})["status"] == "open"
    assert worker.save_draft(citizen("acc-2"), {})["status"] == "open"  # per applicant


def test_submitting_a_draft_files_it_once(worker, repo):
    draft = worker.save_draft(citizen(), {"procedure_code": "1.001234", "agency_code": "W.00001",
                                          "applicant": {"full_name": "Tran Thi B", "province": "01"},
                                          "documents": [doc("form")]})
    with pytest.raises(InvalidInput) as incomplete:  # everything missing is listed at once
        worker.submit_draft(citizen(), draft["id"])
    assert {e["field"] for e in incomplete.value.details} == {"documents.id-card", "applicant.ward"}
    assert worker.get_draft(citizen(), draft["id"])["status"] == "open"
    ready = worker.save_draft(citizen(), {
        "procedure_code": "1.001234", "agency_code": "W.00001",
        "applicant": {"full_name": "Tran Thi B", "province": "01", "ward": "00001", "date_of_birth": "1990-05-01"},
        "document_ids": [draft["documents"][0]["id"]], "documents": [doc("id-card", PNG, "id.png", "image/png")]},
        draft["id"])
    dossier = worker.submit_draft(citizen(), draft["id"])
    assert dossier["created"] is True and dossier["status"] == "submitted"
    assert {d["sha256"] for d in dossier["inputs"]} == {d["sha256"] for d in ready["documents"]}
    assert dossier["applicant"]["date_of_birth"] == "1990-05-01"
    closed = worker.get_draft(citizen(), draft["id"])
    assert closed["status"] == "submitted" and closed["dossier_code"] == dossier["code"]
    again = worker.submit_draft(citizen(), draft["id"])
    assert again["code"] == dossier["code"] and again["created"] is False
    with pytest.raises(Conflict) as refused:
        worker.save_draft(citizen(), {"form": {}}, draft["id"])
    assert refused.value.code == "transition_not_allowed"
    with pytest.raises(Conflict):
        worker.discard_draft(citizen(), draft["id"])
    assert worker.list_drafts(citizen(), "submitted")["items"][0]["dossier_code"] == dossier["code"]
    assert worker.list_drafts(citizen())["total"] == 0
    types = [e.event_type for e in repo.log.read_stream(draft_stream(draft["id"]))]
    assert types[-1] == "DossierDraftSubmitted"


def test_a_discarded_draft_cannot_be_filed(worker):
    draft = worker.save_draft(citizen(), filing(documents=[]))
    assert worker.discard_draft(citizen(), draft["id"])["status"] == "discarded"
    with pytest.raises(Conflict) as refused:
        worker.submit_draft(citizen(), draft["id"])
    assert refused.value.code == "transition_not_allowed"
    assert worker.list_drafts(citizen(), "discarded")["total"] == 1


def test_concurrent_submits_of_one_draft_give_one_dossier_and_no_code_gap(worker, repo):
    body = dict(filing(), documents=[doc("form"), doc("id-card", PNG, "id.png", "image/png")])
    draft = worker.save_draft(citizen(), body)
    results, errors = all_at_once(lambda _: worker.submit_draft(citizen(), draft["id"]), 8)
    assert not errors, errors
    assert len({r["code"] for r in results}) == 1 and [r["created"] for r in results].count(True) == 1
    code = results[0]["code"]
    assert parse_code(code)[2] == 1
    later = worker.submit(citizen(), filing(), None)  # the losers gave their numbers back
    assert parse_code(later["code"])[2] == 2
    assert repo.log.stream_version(stream_id(code)) == 1


def test_the_drafts_projection_rebuilds_from_the_log(worker, repo):
    a = worker.save_draft(citizen(), {"documents": [doc("form")]})
    b = worker.save_draft(citizen("acc-2"), filing(documents=[doc("form"), doc("id-card")]))
    worker.save_draft(citizen(), {"form": {"x": 1}}, a["id"])
    worker.discard_draft(citizen(), a["id"])
    worker.submit_draft(citizen("acc-2"), b["id"])
    with repo.repository.db.transaction(dict_rows=False) as cur:
        live = queries.snapshot(cur, "drafts")
        cur.execute("DELETE FROM owner_drafts")
    assert len(live) == 2
    stats = queries.rebuild(repo.repository.db, ["drafts"])
    assert stats["drafts"] == 2 and stats["events"] == 5
    with repo.repository.db.transaction(dict_rows=False) as cur:
        assert queries.snapshot(cur, "drafts") == live


# -- fee exemptions: kept with the draft (DossierDraftSaved v2), checked and recorded at filing -----

FEE = {"id": "le-phi", "name": "Lệ phí", "amount": 200000, "basis": "fixed", "due": "before_reception",
       "exemptions": ["Trẻ em", "Người cao tuổi"]}
COPY_FEE = {"id": "ban-sao", "name": "Phí bản sao", "amount": 5000, "basis": "fixed", "due": "with_reception",
            "exemptions": []}
CHILD = [{"fee_id": "le-phi", "exemption": "Trẻ em"}]


@pytest.fixture
def fee_worker(worker):
    worker.catalog.get_procedure.return_value = dict(PROCEDURE, fees=[FEE, COPY_FEE])
    return worker


def complete_draft(**overrides) -> dict:
    return dict(filing(documents=[doc("form"), doc("id-card", PNG, "id.png", "image/png")]), **overrides)


def test_a_draft_keeps_its_fee_exemptions_and_files_them_as_a_filing_would(fee_worker, repo):
    worker = fee_worker
    draft = worker.save_draft(citizen(), {"procedure_code": "1.001234", "fee_exemptions": CHILD})
    assert draft["fee_exemptions"] == CHILD
    assert worker.get_draft(citizen(), draft["id"])["fee_exemptions"] == CHILD
    saved = worker.save_draft(citizen(), complete_draft(fee_exemptions=CHILD, version=1), draft["id"])
    assert saved["fee_exemptions"] == CHILD and saved["version"] == 2
    events = repo.log.read_stream(draft_stream(draft["id"]))
    assert [(e.event_type, e.schema_version) for e in events] == [("DossierDraftSaved", 2)] * 2
    assert events[-1].data["fee_exemptions"] == CHILD
    dossier = worker.submit_draft(citizen(), draft["id"])
    assert dossier["created"] is True and dossier["status"] == "submitted"
    [shown] = dossier["fee_exemptions"]
    assert {k: shown[k] for k in ("fee_id", "exemption", "amount", "status")} == {
        "fee_id": "le-phi", "exemption": "Trẻ em", "amount": 200000, "status": "exempt"}
    # the fee declared is not asked for; the other one is, and the dossier does not wait for it
    [request] = dossier["payment_requests"]
    assert request["amount"] == 5000 and not request["blocking"]
    events = repo.log.read_stream(stream_id(dossier["code"]))
    assert [e.event_type for e in events] == ["DossierSubmitted", "FeeExemptionDeclared", "DossierPaymentRequested"]
    assert [f["id"] for f in events[-1].data["fees"]] == ["ban-sao"]
    assert worker.get(citizen(), dossier["code"])["fee_exemptions"][0]["status"] == "exempt"
    # saving the draft again without them drops them (each save holds the whole draft)
    other = worker.save_draft(citizen(), complete_draft(fee_exemptions=CHILD))
    assert worker.save_draft(citizen(), complete_draft(), other["id"])["fee_exemptions"] == []
    plain = worker.submit_draft(citizen(), other["id"])
    assert plain["fee_exemptions"] == [] and plain["status"] == "awaiting_payment"


def test_a_draft_exempting_a_fee_the_procedure_lacks_is_refused_at_filing_and_files_nothing(fee_worker, repo):
    worker = fee_worker
    cases = [([{"fee_id": "khong-co", "exemption": "Trẻ em"}], "fee_exemptions.0.fee_id"),
             ([{"fee_id": "le-phi", "exemption": "Sinh viên"}], "fee_exemptions.0.exemption"),
             ([{"fee_id": "ban-sao", "exemption": "Trẻ em"}], "fee_exemptions.0.exemption")]
    for claims, field in cases:
        draft = worker.save_draft(citizen(), complete_draft(fee_exemptions=claims))  # unchecked until filing
        head = repo.log.head_position()
        with pytest.raises(InvalidInput) as refused:
            worker.submit_draft(citizen(), draft["id"])
        assert refused.value.code == "filing_incomplete"
        assert field in {p["field"] for p in refused.value.details}, refused.value.details
        assert repo.log.head_position() == head
        assert worker.get_draft(citizen(), draft["id"])["status"] == "open"
    assert worker.list_mine(citizen())["total"] == 0


def test_a_version_1_draft_event_still_replays_as_declaring_no_exemption(fee_worker, repo):
    """Drafts saved before they could hold exemptions: their DossierDraftSaved v1 reads as none,
    the draft shows, rebuilds, is saved again (now v2) and files."""
    worker = fee_worker
    holder = worker.save_draft(citizen(), complete_draft())  # stores the documents' content
    draft_id = str(uuid.uuid4())
    v1 = {"draft_id": draft_id, "owner": {"account_id": "acc-1", "kind": "citizen", "subject": "001090000001"},
          "procedure_code": "1.001234", "agency_code": "W.00001", "applicant": filing()["applicant"],
          "form": {"business_name": "Pho Bo"}, "documents": holder["documents"]}
    context = EventContext(actor=Actor("citizen", "acc-1"))
    with pytest.raises(EventSchemaError):  # v1 keeps its meaning: no exemptions in it
        repo.log.append(draft_stream(draft_id), 0, [NewEvent("DossierDraftSaved", dict(v1, fee_exemptions=CHILD),
                                                             schema_version=1)], context=context)
    with pytest.raises(EventSchemaError):  # and v2 always says which (none is [])
        CATALOGUE.validate("DossierDraftSaved", 2, v1)
    repo.log.append(draft_stream(draft_id), 0, [NewEvent("DossierDraftSaved", v1, schema_version=1)],
                    context=context)
    [event] = repo.log.read_stream(draft_stream(draft_id))
    assert event.schema_version == 1 and "fee_exemptions" not in event.data
    assert drafts.replay([event]).fee_exemptions == []
    stats = queries.rebuild(repo.repository.db, ["drafts"])
    assert stats["drafts"] == 2
    assert draft_id in [i["id"] for i in worker.list_drafts(citizen())["items"]]
    shown = worker.get_draft(citizen(), draft_id)
    assert shown["fee_exemptions"] == [] and shown["version"] == 1 and shown["form"] == {"business_name": "Pho Bo"}
    old = worker.submit_draft(citizen(), draft_id)
    assert old["created"] is True and old["fee_exemptions"] == [] and old["status"] == "awaiting_payment"

    # another v1 draft, saved again by the applicant: the new event is v2 and its exemptions count
    again_id = str(uuid.uuid4())
    repo.log.append(draft_stream(again_id), 0, [NewEvent("DossierDraftSaved", dict(v1, draft_id=again_id),
                                                         schema_version=1)], context=context)
    queries.rebuild(repo.repository.db, ["drafts"])
    resaved = worker.save_draft(citizen(), {**complete_draft(fee_exemptions=CHILD), "document_ids": [
        d["id"] for d in holder["documents"]], "documents": [], "version": 1}, again_id)
    assert resaved["version"] == 2 and resaved["fee_exemptions"] == CHILD
    versions = [e.schema_version for e in repo.log.read_stream(draft_stream(again_id))]
    assert versions == [1, 2]
    filed = worker.submit_draft(citizen(), again_id)
    assert filed["fee_exemptions"][0]["exemption"] == "Trẻ em"
