"""The dossier use cases on both event-log implementations.

The same suite runs on the in-memory log and store (``application.in_memory``: no database at
all) and on PostgreSQL (``application.on_postgres`` on a schema of its own), the way the
``eventsourcing`` library runs one suite on each of its recorders: what the application
relies on (optimistic concurrency, atomic appends, transactions that roll back as a whole)
holds on both.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from unittest.mock import Mock

import pytest

from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventSchemaError, EventStore, MemoryEventStore, NewEvent
from services.dossier.application import Drafts, access, actions, drafts, filing, in_memory
from services.dossier.domain.access import Caller
from services.dossier.domain.calendar import local_date
from services.dossier.domain.codes import parse_code, stream_id
from services.dossier.domain.documents import check_upload
from tests.dossier.conftest import PDF, agency_ctx, applicant_ctx, submit
from tests.support.threads import all_at_once

AGENCY = "H29.01"


@pytest.fixture(params=["memory", "postgresql"])
def app(request):
    """The application on one implementation of its ports."""
    if request.param == "memory":
        dossiers = in_memory()
        assert isinstance(dossiers.log, MemoryEventStore)
        return dossiers
    dossiers = request.getfixturevalue("repo")
    assert isinstance(dossiers.log, EventStore)
    return dossiers


def event_types(app, code: str) -> list[str]:
    return [e.event_type for e in app.log.read_stream(stream_id(code))]


def received(app, **kw):
    state, _ = submit(app, **kw)
    officer, octx = agency_ctx(AGENCY)
    return app.execute(state.code, "receive", {}, officer, octx)


# -- submitting ---------------------------------------------------------------------------------


def test_submit_issues_a_code_records_the_event_and_projects(app):
    state, created = submit(app)
    assert created and state.status == "submitted" and state.version == 1
    assert parse_code(state.code) == (AGENCY, local_date(dt.datetime.now(dt.UTC)), 1)
    [event] = app.log.read_stream(stream_id(state.code))
    assert event.event_type == "DossierSubmitted" and event.metadata["actor"]["id"] == "acc-1"
    assert event.data["documents"][0]["sha256"] == state.inputs[0]["sha256"]
    assert app.lookup(state.code)["status"] == "submitted"
    assert app.owner_list("acc-1", None, 1, 20)["items"][0]["code"] == state.code
    assert app.agency_queue(AGENCY, None, None, 1, 20)["items"][0]["code"] == state.code


def test_codes_have_no_gap_per_agency_and_day(app):
    codes = [submit(app, owner=f"acc-{i}")[0].code for i in range(5)]
    codes.append(submit(app, agency="H29.02")[0].code)
    assert [parse_code(c)[2] for c in codes] == [1, 2, 3, 4, 5, 1]
    with pytest.raises(EventSchemaError):  # refused at the append: the number it drew rolls back
        app.submit(owner={"account_id": "acc-9", "kind": "citizen"}, applicant={"full_name": "X"}, form={},
                   procedure={"code": "1.000001", "name": "No version", "processing_days": 3},
                   agency={"code": AGENCY, "name": "A"}, uploads=[], idempotency_key="k-refused",
                   context=applicant_ctx("acc-9")[1])
    assert app.owner_list("acc-9", None, 1, 20)["total"] == 0
    assert parse_code(submit(app, owner="acc-6")[0].code)[2] == 6


def test_codes_have_no_gap_under_concurrent_submissions(app):
    codes, _ = all_at_once(lambda i: submit(app, owner=f"acc-{i}")[0].code, 8)
    assert sorted(parse_code(c)[2] for c in codes) == list(range(1, 9))


def test_same_key_and_same_filing_returns_the_same_dossier(app):
    first, created = submit(app, key="k-1")
    again, created_again = submit(app, key="k-1")
    assert created and not created_again and again.code == first.code
    assert event_types(app, first.code) == ["DossierSubmitted"]
    assert app.owner_list("acc-1", None, 1, 20)["total"] == 1
    other, _ = submit(app, owner="acc-2", key="k-1")  # keys are per owner
    assert other.code != first.code


def test_same_key_and_a_different_filing_is_a_conflict(app):
    submit(app, key="k-2")
    with pytest.raises(Conflict) as refused:
        submit(app, key="k-2", name="Someone Else")
    assert refused.value.code == "idempotency_key_reused"
    assert app.owner_list("acc-1", None, 1, 20)["total"] == 1


# -- the submit RPC: the one filing hash, names and content types included ------------------------

PROCEDURE = {"code": "1.001234", "version": 7, "name": "Registration", "processing_days": 3, "status": "active",
             "online_level": "full", "required_documents": [{"id": "form", "name": "Form", "mandatory": True}]}
CITIZEN = {"request_id": "r-1", "actor": {"kind": "citizen", "id": "acc-1", "subject": "001090000001"}}


def _catalog() -> Mock:
    catalog = Mock()
    catalog.get_procedure.return_value = PROCEDURE
    catalog.agencies_for.return_value = [{"code": "W.00001", "name": "Ward 1", "level": "commune"}]
    catalog.resolve_agency.side_effect = lambda code: {"code": code}
    return catalog


def _filing(name: str = "form.pdf") -> dict:
    return {"procedure_code": "1.001234", "agency_code": "W.00001",
            "applicant": {"full_name": "Tran Thi B", "province": "01", "ward": "00001"},
            "documents": [{"requirement": "form", "name": name, "content_type": "application/pdf",
                           "content_base64": base64.b64encode(PDF).decode()}]}


def test_submit_rpc_idempotency_covers_document_names(app):
    first = filing.submit(app, _catalog(), CITIZEN, _filing(), "k-rpc")
    again = filing.submit(app, _catalog(), CITIZEN, _filing(), "k-rpc")
    assert first["created"] and not again["created"] and again["code"] == first["code"]
    with pytest.raises(Conflict) as refused:  # same bytes under another name: another filing
        filing.submit(app, _catalog(), CITIZEN, _filing(name="other.pdf"), "k-rpc")
    assert refused.value.code == "idempotency_key_reused"


# -- transitions ------------------------------------------------------------------------------


def test_receive_process_supplement_result_return(app):
    state, _ = submit(app)
    code = state.code
    officer, octx = agency_ctx(AGENCY)
    owner, actx = applicant_ctx("acc-1")
    state = app.execute(code, "receive", {}, officer, octx)
    assert state.status == "received" and state.appointment_date is not None
    app.execute(code, "start_processing", {}, officer, octx)
    app.execute(code, "request_supplement", {"missing": ["certificate"], "reason": "missing"}, officer, octx)
    doc = app.upload(code, owner, check_upload(None, "cert.pdf", "application/pdf", b"%PDF-1.2 cert", "file"))
    state = app.execute(code, "supplement", {"note": "here"}, owner, actx, document_ids=[doc["id"]])
    assert state.status == "supplemented" and doc["id"] in {d["id"] for d in state.inputs}
    app.execute(code, "start_processing", {}, officer, octx)
    result = check_upload(None, "result.pdf", "application/pdf", b"%PDF-1.7 result", "documents.0")
    state = app.execute(code, "result", {"note": "granted"}, officer, octx, uploads=[result])
    assert state.status == "result_ready" and state.outputs[0]["kind"] == "output"
    state = app.execute(code, "return_result", {}, officer, octx)
    assert state.status == "returned" and app.lookup(code)["status"] == "returned"
    ref, content = app.document(code, state.outputs[0]["id"], owner)
    assert content == b"%PDF-1.7 result" and ref["name"] == "result.pdf"
    assert event_types(app, code) == [
        "DossierSubmitted", "DossierReceived", "DossierProcessingStarted", "SupplementRequested",
        "DossierSupplemented", "DossierProcessingStarted", "DossierResultReady", "DossierResultReturned"]
    # each event carries the status it left the dossier in, with the national portal's code,
    # in its metadata and in the envelope published for it
    recorded = app.log.read_stream(stream_id(code))
    assert [(e.envelope()["attributes"]["dossier_status"], e.envelope()["attributes"]["national_status_code"])
            for e in recorded] == [
        ("submitted", 1), ("received", 2), ("processing", 4), ("supplement_requested", 5),
        ("supplemented", 4), ("processing", 4), ("result_ready", 9), ("returned", 10)]
    assert all(e.metadata["attributes"] == e.envelope()["attributes"] for e in recorded)
    with pytest.raises(Conflict) as refused:
        app.execute(code, "withdraw", {}, owner, actx)
    assert refused.value.code == "transition_not_allowed"
    assert app.log.stream_version(stream_id(code)) == 8


def test_refuse_and_withdraw_close_the_dossier(app):
    refused_one, _ = submit(app)
    officer, octx = agency_ctx(AGENCY)
    state = app.execute(refused_one.code, "refuse", {"reason": "incomplete"}, officer, octx)
    assert state.status == "refused" and app.lookup(refused_one.code)["status"] == "refused"
    withdrawn, _ = submit(app)
    owner, actx = applicant_ctx("acc-1")
    state = app.execute(withdrawn.code, "withdraw", {"reason": "changed my mind"}, owner, actx)
    assert state.status == "withdrawn"
    closing = [app.log.read_stream(stream_id(c))[-1].envelope()["attributes"] for c in (refused_one.code, state.code)]
    assert closing == [{"dossier_status": "refused", "national_status_code": 3},
                       {"dossier_status": "withdrawn", "national_status_code": 7}]
    assert app.agency_queue(AGENCY, None, None, 1, 20)["total"] == 0  # closed ones leave the queue
    assert app.agency_queue(AGENCY, "withdrawn", None, 1, 20)["total"] == 1
    with pytest.raises(Conflict):
        app.upload(withdrawn.code, owner, check_upload(None, "x.pdf", "application/pdf", PDF, "file"))


def test_a_refused_command_writes_nothing(app):
    state, _ = submit(app)
    officer, octx = agency_ctx(AGENCY)
    before = app.owner_list("acc-1", None, 1, 20)
    with pytest.raises(Conflict):
        app.execute(state.code, "return_result", {}, officer, octx)
    with pytest.raises(InvalidInput):  # refused after documents were stored: they roll back too
        app.execute(state.code, "refuse", {"reason": ""}, officer, octx)
    assert app.log.stream_version(stream_id(state.code)) == 1
    assert app.owner_list("acc-1", None, 1, 20) == before


# -- authorization ------------------------------------------------------------------------------


def test_owner_other_applicant_and_agencies(app):
    state, _ = submit(app)
    owner, _ = applicant_ctx("acc-1")
    stranger, sctx = applicant_ctx("acc-2")
    officer, _ = agency_ctx(AGENCY)
    other_agency, xctx = agency_ctx("H29.99")
    assert app.visible(state.code, owner).code == state.code
    assert app.visible(state.code, officer).code == state.code
    for caller in (stranger, other_agency, Caller("anonymous")):
        with pytest.raises(NotFound) as hidden:
            app.visible(state.code, caller)
        assert hidden.value.code == "dossier_not_found"
    with pytest.raises(NotFound):
        app.execute(state.code, "withdraw", {}, stranger, sctx)
    with pytest.raises(NotFound):
        app.execute(state.code, "receive", {}, other_agency, xctx)
    with pytest.raises(Conflict):  # the owner cannot run an agency command
        app.execute(state.code, "receive", {}, owner, applicant_ctx("acc-1")[1])
    with pytest.raises(NotFound):
        app.document(state.code, state.inputs[0]["id"], stranger)
    assert app.owner_list("acc-2", None, 1, 20)["total"] == 0
    assert app.agency_queue("H29.99", None, None, 1, 20)["total"] == 0


def test_rpc_reads_answer_by_caller_kind(app):
    state, _ = submit(app)
    officer = {"request_id": "r-9", "actor": {"kind": "officer", "id": "o-1", "agency_code": AGENCY}}
    owner = {"actor": {"kind": "citizen", "id": "acc-1"}}
    assert actions.get(app, officer, state.code)["code"] == state.code
    assert actions.list_mine(app, officer, None, 1, 20, {})["total"] == 0
    assert actions.agency_queue(app, owner, None, None, 1, 20)["total"] == 0
    assert actions.list_mine(app, owner, None, 1, 20, {})["total"] == 1
    page = access.owner_view(app, owner, state.code)
    assert page["total"] == 1 and page["items"][0]["access"] == "view"


# -- optimistic concurrency ---------------------------------------------------------------------


def _race(app, code: str, times: int) -> list[int]:
    """Make the next ``times`` commands lose their append to an event another writer records
    between their read and their append."""
    attempts: list[int] = []
    project = app.read_models.project

    def racing_project(tx, state):
        attempts.append(state.version)
        if len(attempts) <= times:
            current = app.log.stream_version(stream_id(code))
            app.log.append(stream_id(code), current, [NewEvent("DossierBecameOverdue", {
                "code": code, "agency_code": AGENCY, "appointment_date": "2026-01-05",
                "detected_on": "2026-01-06"})])
        project(tx, state)

    app.read_models.project = racing_project
    return attempts


def test_a_command_that_loses_a_race_is_retried_on_the_fresh_state(app):
    state = received(app)
    officer, octx = agency_ctx(AGENCY)
    attempts = _race(app, state.code, times=1)
    after = app.execute(state.code, "start_processing", {}, officer, octx)
    assert len(attempts) == 2 and after.status == "processing" and after.overdue
    assert event_types(app, state.code) == ["DossierSubmitted", "DossierReceived", "DossierBecameOverdue",
                                            "DossierProcessingStarted"]


def test_a_command_that_keeps_losing_gives_up_with_conflict(app):
    state = received(app)
    officer, octx = agency_ctx(AGENCY)
    attempts = _race(app, state.code, times=10)
    with pytest.raises(Conflict) as gave_up:
        app.execute(state.code, "start_processing", {}, officer, octx)
    assert gave_up.value.code == "concurrent_update" and len(attempts) == 4
    assert "DossierProcessingStarted" not in event_types(app, state.code)


def test_concurrent_commands_on_one_dossier_apply_once(app):
    state = received(app)
    officer, octx = agency_ctx(AGENCY)

    def start(_: int) -> str:
        try:
            app.execute(state.code, "start_processing", {}, officer, octx)
            return "ok"
        except Conflict:
            return "conflict"

    outcomes, _ = all_at_once(start, 4)
    assert outcomes.count("ok") == 1
    assert event_types(app, state.code).count("DossierProcessingStarted") == 1


# -- the overdue job and lookup ----------------------------------------------------------------


def test_overdue_marking(app):
    state = received(app)
    officer, octx = agency_ctx(AGENCY)
    later = dt.datetime.combine(state.appointment_date + dt.timedelta(days=2), dt.time(5), dt.UTC)
    assert app.mark_overdue(now=dt.datetime.now(dt.UTC)) == []
    assert app.mark_overdue(now=later) == [state.code]
    assert app.mark_overdue(now=later) == []
    assert app.lookup(state.code)["overdue"] is True
    assert app.agency_queue(AGENCY, None, True, 1, 20)["items"][0]["code"] == state.code
    paused = received(app, owner="acc-2")
    app.execute(paused.code, "pause", {"reason": "waiting"}, officer, octx)
    assert app.mark_overdue(now=later + dt.timedelta(days=5)) == []


def test_lookup_is_public_and_personal_data_free(app):
    state, _ = submit(app, name="Nguyen Van A")
    public = app.lookup(state.code)
    assert public == {"code": state.code, "status": "submitted", "national_status_code": 1,
                      "procedure": {"code": "1.000001", "name": "Birth registration"},
                      "agency": {"code": AGENCY, "name": f"Agency {AGENCY}"},
                      "received_at": None, "appointment_date": None, "overdue": False}
    assert "Nguyen" not in repr(public)
    for unknown in ("H29.01-260101-9999", "not a code", ""):
        with pytest.raises(NotFound):
            app.lookup(unknown)


# -- drafts ------------------------------------------------------------------------------------


def test_a_draft_is_filed_once(app):
    draft_app = Drafts(app)
    owner = {"actor": {"kind": "citizen", "id": "acc-1", "subject": "001090000001"}}
    body = {k: v for k, v in _filing().items()}
    draft = drafts.save(draft_app, owner, body)
    assert draft["status"] == "open" and len(draft["documents"]) == 1
    assert drafts.list_mine(draft_app, owner)["total"] == 1
    filed = drafts.submit(draft_app, _catalog(), owner, draft["id"])
    again = drafts.submit(draft_app, _catalog(), owner, draft["id"])
    assert filed["created"] and not again["created"] and again["code"] == filed["code"]
    assert drafts.get(draft_app, owner, draft["id"])["status"] == "submitted"
    assert drafts.list_mine(draft_app, owner, "submitted")["items"][0]["dossier_code"] == filed["code"]


def test_a_request_applied_already_answers_what_it_made_instead_of_refusing_itself(app):
    """An agency action whose reply was lost runs again (its RPC is redelivered after a broker
    restart): the same request finds its own event last and answers the state, unchanged."""
    state, _ = submit(app)
    officer, octx = agency_ctx(AGENCY)
    request = dataclasses.replace(octx, correlation_id="req-receive-1")
    first = app.execute(state.code, "receive", {}, officer, request)
    again = app.execute(state.code, "receive", {}, officer, request)
    assert again.status == first.status == "received" and again.version == first.version
    assert event_types(app, state.code) == ["DossierSubmitted", "DossierReceived"]
    # another request for the same transition is still refused: it is not a repeat
    with pytest.raises(Conflict):
        app.execute(state.code, "receive", {}, officer, dataclasses.replace(octx, correlation_id="req-receive-2"))
    # nor is the same request id from another officer
    other, other_ctx = agency_ctx(AGENCY)
    other_ctx = dataclasses.replace(other_ctx, correlation_id="req-receive-1",
                                    actor=dataclasses.replace(other_ctx.actor, id="officer-else"))
    with pytest.raises(Conflict):
        app.execute(state.code, "receive", {}, other, other_ctx)


# -- fee exemptions: declared at filing, disputed by the agency ---------------------------------

FEE = {"id": "le-phi", "name": "Lệ phí", "amount": 200000, "basis": "fixed", "due": "before_reception",
       "exemptions": ["Trẻ em", "Người cao tuổi"]}
COPY_FEE = {"id": "ban-sao", "name": "Phí bản sao", "amount": 5000, "basis": "fixed", "due": "with_reception",
            "exemptions": []}
CHILD = [{"fee_id": "le-phi", "exemption": "Trẻ em"}]


def _fee_catalog() -> Mock:
    catalog = _catalog()
    catalog.get_procedure.return_value = dict(PROCEDURE, fees=[FEE, COPY_FEE])
    return catalog


def _dispute(app, code: str, agency: str = AGENCY, request: str = "req-dispute-1", fee_id: str = "le-phi"):
    officer = {"request_id": request, "actor": {"kind": "officer", "id": f"officer-{agency}", "agency_code": agency}}
    return actions.act(app, None, officer, code, "dispute-exemption", {"fee_id": fee_id, "reason": "Đã 40 tuổi"})


def test_a_declared_exemption_is_recorded_after_the_submission_and_its_fee_not_requested(app):
    state, _ = submit(app, fees=[FEE, COPY_FEE], fee_exemptions=CHILD)
    assert event_types(app, state.code) == ["DossierSubmitted", "FeeExemptionDeclared", "DossierPaymentRequested"]
    assert state.status == "submitted" and app.lookup(state.code)["status"] == "submitted"
    [declared] = [e for e in app.log.read_stream(stream_id(state.code)) if e.event_type == "FeeExemptionDeclared"]
    assert {k: declared.data[k] for k in ("code", "fee_id", "fee_name", "amount", "exemption")} == {
        "code": state.code, "fee_id": "le-phi", "fee_name": "Lệ phí", "amount": 200000, "exemption": "Trẻ em"}
    [request] = state.payment_requests.values()
    assert request["amount"] == 5000 and not request["blocking"]  # only the fee not declared
    [shown] = actions.get(app, {"actor": {"kind": "citizen", "id": "acc-1"}}, state.code)["fee_exemptions"]
    assert shown["status"] == "exempt" and shown["exemption"] == "Trẻ em" and shown["amount"] == 200000


def test_every_fee_exempted_the_dossier_does_not_wait(app):
    state, _ = submit(app, fees=[FEE], fee_exemptions=CHILD)
    assert state.status == "submitted" and state.payment_requests == {}
    assert event_types(app, state.code) == ["DossierSubmitted", "FeeExemptionDeclared"]
    unexempted, _ = submit(app, fees=[FEE])
    assert unexempted.status == "awaiting_payment"


def test_a_filing_declaring_an_unlisted_exemption_is_refused_and_writes_nothing(app):
    bad = [({"fee_id": "le-phi", "exemption": "Sinh viên"}, "fee_exemptions.0.exemption"),
           ({"fee_id": "khong-co", "exemption": "Trẻ em"}, "fee_exemptions.0.fee_id"),
           ({"fee_id": "ban-sao", "exemption": "Trẻ em"}, "fee_exemptions.0.exemption")]
    for claim, field in bad:
        with pytest.raises(InvalidInput) as refused:
            filing.submit(app, _fee_catalog(), CITIZEN, dict(_filing(), fee_exemptions=[claim]), None)
        assert field in {p["field"] for p in refused.value.details}
    for junk in ([{"fee_id": "le-phi"}], [{"fee_id": "x" * 101, "exemption": "Trẻ em"}],
                 [{"fee_id": "le-phi", "exemption": "Trẻ\x00em"}], "le-phi", CHILD * 2, [CHILD[0]] * 21):
        with pytest.raises(InvalidInput):
            filing.submit(app, _fee_catalog(), CITIZEN, dict(_filing(), fee_exemptions=junk), None)
    assert app.owner_list("acc-1", None, 1, 20)["total"] == 0
    filed = filing.submit(app, _fee_catalog(), CITIZEN, dict(_filing(), fee_exemptions=CHILD), "k-exempt")
    assert filed["status"] == "submitted" and filed["fee_exemptions"][0]["status"] == "exempt"
    with pytest.raises(Conflict):  # the same key without the declaration is another filing
        filing.submit(app, _fee_catalog(), CITIZEN, _filing(), "k-exempt")


def test_the_agency_disputes_an_exemption_and_the_fee_is_requested(app):
    state, _ = submit(app, fees=[FEE], fee_exemptions=CHILD)
    disputed = _dispute(app, state.code)
    assert disputed["status"] == "awaiting_payment"
    assert event_types(app, state.code)[-2:] == ["FeeExemptionDisputed", "DossierPaymentRequested"]
    [shown] = disputed["fee_exemptions"]
    [request] = disputed["payment_requests"]
    assert shown["status"] == "disputed" and shown["reason"] == "Đã 40 tuổi" and shown["request_id"] == request["id"]
    assert request["amount"] == 200000 and request["blocking"] and request["status"] == "open"
    assert app.lookup(state.code)["status"] == "awaiting_payment"
    # the same request again (its reply was lost): the state it made, nothing more
    again = _dispute(app, state.code)
    assert again["version"] == disputed["version"]
    with pytest.raises(Conflict) as twice:  # a new request: nothing left to dispute
        _dispute(app, state.code, request="req-dispute-2")
    assert twice.value.code == "no_exemption_to_dispute"
    assert event_types(app, state.code).count("FeeExemptionDisputed") == 1


def test_disputes_that_are_not_the_agencys_or_have_nothing_to_dispute_write_nothing(app):
    state, _ = submit(app, fees=[FEE, COPY_FEE], fee_exemptions=CHILD)
    with pytest.raises(NotFound):  # another agency never held it
        _dispute(app, state.code, agency="H29.99")
    with pytest.raises(Conflict) as none:  # no exemption declared for that fee
        _dispute(app, state.code, fee_id="ban-sao")
    assert none.value.code == "no_exemption_to_dispute"
    with pytest.raises(InvalidInput):
        actions.act(app, None, {"actor": {"kind": "officer", "id": "o", "agency_code": AGENCY}}, state.code,
                    "dispute-exemption", {"fee_id": "le-phi", "reason": "x" * 2001})
    owner = {"actor": {"kind": "citizen", "id": "acc-1"}}
    with pytest.raises(NotFound):  # not the applicant's to do
        actions.act(app, None, owner, state.code, "dispute-exemption", {"fee_id": "le-phi", "reason": "x"})
    officer, octx = agency_ctx(AGENCY)
    app.execute(state.code, "refuse", {"reason": "incomplete"}, officer, octx)
    with pytest.raises(Conflict) as closed:
        _dispute(app, state.code, request="req-after-refusal")
    assert closed.value.code == "transition_not_allowed"
    assert "FeeExemptionDisputed" not in event_types(app, state.code)
