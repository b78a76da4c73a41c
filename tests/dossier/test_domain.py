"""The pure dossier domain: every state x command, random histories, working days, codes."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from portal_common.errors import Conflict, InvalidInput
from services.dossier.domain import lifecycle
from services.dossier.domain.calendar import add_working_days, is_working_day, working_days_between
from services.dossier.domain.codes import format_code, parse_code, with_code
from services.dossier.domain.documents import check_upload, clean_name, decode_base64
from services.dossier.domain.lifecycle import DossierState, check, decide, evolve

NOW = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 10:00 in Hanoi
ACTIVE = ("received", "processing", "supplement_requested", "supplemented", "forwarded")

# The lifecycle written out by hand (independently of lifecycle.ALLOWED): what each status
# allows when the dossier is neither paused nor overdue. mark_overdue is checked separately.
EXPECTED = {
    "submitted": {"receive", "refuse", "withdraw"},
    "received": {"start_processing", "request_supplement", "forward", "pause", "result", "reject", "withdraw",
                 "request_payment"},
    "processing": {"request_supplement", "forward", "pause", "result", "reject", "withdraw", "request_payment"},
    "supplement_requested": {"supplement", "reject", "withdraw"},
    "supplemented": {"start_processing", "request_supplement", "forward", "pause", "result", "reject",
                     "withdraw", "request_payment"},
    "forwarded": {"start_processing", "request_supplement", "pause", "result", "reject", "withdraw",
                  "request_payment"},
    "result_ready": {"return_result"},
    "returned": set(),
    "refused": set(),
    "rejected": set(),
    "withdrawn": set(),
    "awaiting_payment": {"reject", "withdraw"},  # refuse too, before reception (tested below)
    "payment_expired": {"reject", "withdraw", "request_payment"},
}
# The system's commands, run when the payment service reports (tested on their own below).
PAYMENT_SYSTEM = ("payment_received", "payment_expired", "attach_receipt")
RID = "5d1f7f0e-0000-4000-8000-000000000009"
RESULT_STATUS = {
    "receive": "received", "refuse": "refused", "start_processing": "processing",
    "request_supplement": "supplement_requested", "supplement": "supplemented", "forward": "forwarded",
    "result": "result_ready", "return_result": "returned", "reject": "rejected", "withdraw": "withdrawn",
    "request_payment": "awaiting_payment",
}
DOC = {"id": "7b1f7f0e-0000-4000-8000-000000000001", "requirement": "r1", "name": "a.pdf",
       "content_type": "application/pdf", "size": 10, "sha256": "a" * 64}


def args_for(command: str) -> dict:
    return {
        "refuse": {"reason": "incomplete"}, "reject": {"reason": "not eligible"},
        "request_supplement": {"missing": ["photo"], "reason": "photo missing",
                               "due_date": dt.date(2026, 3, 20)},
        "supplement": {"documents": [DOC]}, "forward": {"to_agency": {"code": "B2"}, "reason": "inter-agency"},
        "pause": {"reason": "waiting for verification"}, "extend": {"new_date": dt.date(2026, 4, 1),
                                                                    "reason": "sorry"},
        "result": {"documents": [DOC]},
        "request_payment": {"amount": 150000, "reason": "Phí thẩm định", "request_id": RID},
        "payment_received": {"request_ids": [RID], "payment_id": "6d1f7f0e-0000-4000-8000-00000000000a",
                             "amount": 150000},
        "payment_expired": {"request_ids": [RID], "due_date": "2026-03-01"},
        "attach_receipt": {"payment_id": "6d1f7f0e-0000-4000-8000-00000000000a", "receipt_no": "BL2026-00000001",
                           "document": DOC},
    }.get(command, {})


def make_state(status: str, paused: bool = False, overdue: bool = False,
               appointment: dt.date | None = dt.date(2026, 3, 10)) -> DossierState:
    return DossierState(
        code="A1-260302-0001", version=3, status=status, owner={"account_id": "u1", "kind": "citizen"},
        applicant={"full_name": "Nguyen Van A"}, procedure={"code": "P1", "version": 1, "name": "P",
                                                            "processing_days": 5},
        agency_code="A1", agencies=["A1"], submitted_at=NOW.isoformat(),
        appointment_date=appointment if status in ACTIVE else None,
        paused_on=dt.date(2026, 2, 27) if paused else None, overdue=overdue,
    )


def expected_allowed(status: str, command: str, paused: bool, overdue: bool, past_due: bool = False) -> bool:
    """``past_due``: the appointment date has passed (extend is allowed before the job marks it)."""
    if command == "mark_overdue":
        return status in ACTIVE and not paused and not overdue
    if command == "resume":
        return status in ACTIVE and paused
    if command == "extend":
        return status in ACTIVE and (overdue or past_due) and not paused
    allowed = command in EXPECTED[status]
    if paused:
        allowed = allowed and command in {"reject", "withdraw"}
    return allowed


CASES = [(s, c, p, o) for s, c, p, o in itertools.product(
    lifecycle.STATUSES, lifecycle.COMMANDS, (False, True), (False, True))
    if not (p and s not in ACTIVE) and c not in (*PAYMENT_SYSTEM, "dispute_exemption")]  # those: below


@pytest.mark.parametrize(("status", "command", "paused", "overdue"), CASES)
def test_every_state_and_command(status, command, paused, overdue):
    state = make_state(status, paused, overdue, appointment=dt.date(2026, 2, 20))  # past: overdue-able
    if expected_allowed(status, command, paused, overdue, past_due=True):
        events = decide(state, command, args_for(command), NOW)
        assert events, "an allowed command decides at least one event"
        after = state
        for event_type, data in events:
            assert event_type in lifecycle.EVENT_TYPES
            after = evolve(after, event_type, data, NOW)
        assert after.version == state.version + len(events)
        assert after.status == RESULT_STATUS.get(command, status)
    else:
        with pytest.raises(Conflict) as refused:
            decide(state, command, args_for(command), NOW)
        assert refused.value.code == "transition_not_allowed"
        assert refused.value.details["state"] == status
        assert refused.value.details["command"] == command


def test_receive_sets_the_appointment_in_working_days():
    state = make_state("submitted")
    [(event_type, data)] = decide(state, "receive", {}, NOW)
    assert event_type == "DossierReceived"
    assert data["appointment_date"] == "2026-03-09"  # Mon + 5 working days = next Monday


def test_resume_moves_the_appointment_by_the_paused_working_days():
    state = make_state("processing", paused=True, appointment=dt.date(2026, 3, 10))
    # paused Fri 27 Feb, resumed Mon 2 Mar: one working day (Monday) lost
    [(_, data)] = decide(state, "resume", {}, NOW)
    assert data["paused_working_days"] == 1
    assert data["appointment_date"] == "2026-03-11"


def test_extend_needs_a_later_date_and_a_reason():
    state = make_state("processing", overdue=True, appointment=dt.date(2026, 2, 25))
    with pytest.raises(InvalidInput):
        decide(state, "extend", {"new_date": dt.date(2026, 2, 1), "reason": "sorry"}, NOW)
    with pytest.raises(InvalidInput):
        decide(state, "extend", {"new_date": dt.date(2026, 4, 1)}, NOW)
    [(_, data)] = decide(state, "extend", {"new_date": dt.date(2026, 4, 1), "reason": "sorry"}, NOW)
    after = evolve(state, "DeadlineExtended", data, NOW)
    assert after.appointment_date == dt.date(2026, 4, 1) and not after.overdue


def test_extend_past_due_before_the_job_records_the_lateness_first():
    state = make_state("processing", appointment=dt.date(2026, 2, 25))  # past, not yet marked
    events = decide(state, "extend", {"new_date": dt.date(2026, 4, 1), "reason": "Xin lỗi"}, NOW)
    assert [t for t, _ in events] == ["DossierBecameOverdue", "DeadlineExtended"]
    assert events[1][1]["previous_date"] == "2026-02-25"
    due = make_state("processing", appointment=dt.date(2026, 3, 10))  # not late: nothing to apologise for
    with pytest.raises(Conflict):
        decide(due, "extend", {"new_date": dt.date(2026, 4, 1), "reason": "x"}, NOW)


def test_mark_overdue_only_after_the_appointment_day():
    on_time = make_state("processing", appointment=dt.date(2026, 3, 2))
    with pytest.raises(Conflict):
        decide(on_time, "mark_overdue", {}, NOW)  # due today: not overdue yet
    late = make_state("processing", appointment=dt.date(2026, 2, 27))
    [(event_type, _)] = decide(late, "mark_overdue", {}, NOW)
    assert event_type == "DossierBecameOverdue"


@pytest.mark.parametrize("command", ["refuse", "reject", "pause", "request_supplement"])
def test_reasons_are_required(command):
    state = make_state("submitted" if command == "refuse" else "processing")
    with pytest.raises(InvalidInput):
        decide(state, command, {"reason": "   ", "missing": ["x"]} if command == "request_supplement" else {},
               NOW)


def test_forward_to_the_same_agency_is_refused():
    with pytest.raises(InvalidInput):
        decide(make_state("processing"), "forward", {"to_agency": {"code": "A1"}, "reason": "x"}, NOW)


class LifecycleMachine(RuleBasedStateMachine):
    """Random command sequences: refused commands change nothing; invariants always hold."""

    def __init__(self):
        super().__init__()
        _, data = lifecycle.submitted_event(
            code="A1-260302-0001", owner={"account_id": "u1", "kind": "citizen"}, applicant={},
            form={}, procedure={"code": "P1", "version": 1, "name": "P", "processing_days": 3},
            agency={"code": "A1"}, documents=[], now=NOW, idempotency_key=None)
        self.state = evolve(DossierState(), "DossierSubmitted", data, NOW)
        self.now = NOW
        self.had_result = False

    @rule(command=st.sampled_from(lifecycle.COMMANDS), days=st.integers(0, 6))
    def run(self, command, days):
        self.now += dt.timedelta(days=days)
        args = args_for(command)
        if command == "forward":
            args = {"to_agency": {"code": "B2" if self.state.agency_code == "A1" else "A1"}, "reason": "x"}
        if command == "extend":
            args = {"new_date": self.now.date() + dt.timedelta(days=30), "reason": "sorry"}
        if command == "request_supplement":
            args = dict(args, due_date=None)
        before = self.state
        try:
            events = decide(self.state, command, args, self.now)
        except (Conflict, InvalidInput):
            assert self.state is before
            return
        for event_type, data in events:
            self.state = evolve(self.state, event_type, data, self.now)
        if self.state.status == "result_ready":
            self.had_result = True
        assert self.state.version == before.version + len(events)
        if before.appointment_date and self.state.appointment_date and command != "extend":
            assert self.state.appointment_date >= before.appointment_date

    @invariant()
    def consistent(self):
        s = self.state
        assert s.status in lifecycle.STATUSES
        if s.paused:
            assert s.status in lifecycle.ACTIVE
        if s.status in lifecycle.FINAL:
            for command in (c for c in lifecycle.COMMANDS if c != "attach_receipt"):  # a receipt may come late
                with pytest.raises(Conflict):
                    check(s, command)
        if self.had_result:
            assert s.status != "withdrawn"
        assert s.agency_code == s.agencies[-1]


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


# -- working days ----------------------------------------------------------------------


@pytest.mark.parametrize(("start", "days", "expected"), [
    (dt.date(2026, 3, 6), 5, dt.date(2026, 3, 13)),   # Fri + 5: skips one weekend
    (dt.date(2026, 3, 6), 1, dt.date(2026, 3, 9)),    # Fri + 1: Monday
    (dt.date(2026, 2, 13), 1, dt.date(2026, 2, 23)),  # Fri before Tết 2026 (16-20 Feb off): Mon 23
    (dt.date(2026, 2, 12), 2, dt.date(2026, 2, 23)),  # Thu + 2 across Tết
    (dt.date(2025, 1, 24), 3, dt.date(2025, 2, 5)),   # Tết 2025: 27 Jan - 1 Feb off
    (dt.date(2025, 4, 29), 2, dt.date(2025, 5, 6)),   # 30/4, 1/5 and the substituted 2/5 off
    (dt.date(2025, 8, 29), 1, dt.date(2025, 9, 3)),   # National Day 1-2 Sep 2025
    (dt.date(2026, 2, 14), 0, dt.date(2026, 2, 23)),  # 0 days from a Saturday before Tết
    (dt.date(2026, 3, 4), 0, dt.date(2026, 3, 4)),
])
def test_add_working_days(start, days, expected):
    assert add_working_days(start, days) == expected


def test_holidays_and_weekends_are_not_working_days():
    assert not is_working_day(dt.date(2026, 2, 17))  # Tết
    assert not is_working_day(dt.date(2026, 9, 2))   # National Day
    assert not is_working_day(dt.date(2026, 3, 7))   # Saturday
    assert is_working_day(dt.date(2026, 3, 9))


def test_working_days_between():
    assert working_days_between(dt.date(2026, 2, 13), dt.date(2026, 2, 23)) == 1
    assert working_days_between(dt.date(2026, 3, 2), dt.date(2026, 3, 2)) == 0
    assert working_days_between(dt.date(2026, 3, 2), dt.date(2026, 3, 9)) == 5
    assert working_days_between(dt.date(2026, 3, 9), dt.date(2026, 3, 2)) == 0


def test_negative_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(dt.date(2026, 3, 2), -1)


# -- codes and documents ---------------------------------------------------------------


def test_code_format_round_trips():
    code = format_code("000.00.12.H29", dt.date(2026, 3, 2), 7)
    assert code == "000.00.12.H29-260302-0007"
    assert parse_code(code) == ("000.00.12.H29", dt.date(2026, 3, 2), 7)
    assert parse_code("X-260302-12345") == ("X", dt.date(2026, 3, 2), 12345)


@pytest.mark.parametrize("bad", ["", "nope", "A-261399-0001", "A-260302-1", "A 1-260302-0001",
                                 "A-260302-0001\n", "../x-260302-0001"])
def test_malformed_codes_do_not_parse(bad):
    assert parse_code(bad) is None


def test_documents_are_checked_by_their_bytes():
    pdf = b"%PDF-1.7 hello"
    upload = check_upload("r1", "dir/../scan.pdf", "application/pdf", pdf, "documents.0")
    assert upload.name == "scan.pdf" and len(upload.sha256) == 64 and upload.size == len(pdf)
    with pytest.raises(InvalidInput) as wrong:
        check_upload("r1", "x.pdf", "application/pdf", b"MZ\x90\x00", "documents.0")
    assert wrong.value.details[0]["field"] == "documents.0.content"
    with pytest.raises(InvalidInput):
        check_upload("r1", "x.exe", "application/x-msdownload", b"MZ", "documents.0")
    with pytest.raises(InvalidInput):
        check_upload("r1", "x.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "d", max_bytes=50)
    with pytest.raises(InvalidInput):
        check_upload("r1", "x.pdf", "application/pdf", b"", "d")
    assert clean_name("a\x00b.pdf") is None
    with pytest.raises(InvalidInput):
        decode_base64("not base64!!", "documents.0.content_base64")


def test_check_filing_lists_everything_missing():
    procedure = {"required_documents": [{"id": "r1", "name": "Form", "mandatory": True},
                                        {"id": "r2", "name": "Photo", "mandatory": True},
                                        {"id": "r3", "name": "Extra", "mandatory": False}]}
    problems = lifecycle.check_filing(procedure, [{"code": "A1"}], "ZZ", ["r1", "bogus"])
    fields = {p["field"] for p in problems}
    assert fields == {"documents.r2", "documents.bogus", "agency_code"}
    assert lifecycle.check_filing(procedure, [{"code": "A1"}], "A1", ["r1", "r2"]) == []


def test_fees_due_before_reception_hold_the_dossier_until_paid():
    state = make_state("submitted")
    before, later = lifecycle.fees_due([{"id": "le-phi", "name": "Lệ phí", "amount": 200000},
                                        {"name": "Phí bản sao", "amount_vnd": 5000, "basis": "per_copy",
                                         "due": "with_reception"}, {"name": "Miễn", "amount": 0}], copies=3)
    assert [f["amount"] for f in before] == [200000] and [(f["amount"], f["id"]) for f in later] == [(15000, "fee2")]
    waiting = evolve(state, *lifecycle.payment_requested_event(
        state, request_id=RID, amount=200000, reason="Lệ phí", fees=before, due_date=None, blocking=True), NOW)
    assert waiting.status == "awaiting_payment" and waiting.payment_return_status == "submitted"
    with pytest.raises(Conflict):
        decide(waiting, "receive", {}, NOW)
    assert decide(waiting, "refuse", {"reason": "sai"}, NOW)[0][0] == "DossierRefused"
    [(event_type, data)] = decide(waiting, "payment_received", args_for("payment_received"), NOW)
    paid = evolve(waiting, event_type, data, NOW)
    assert paid.status == "submitted" and paid.payment_requests[RID]["status"] == "paid"
    with pytest.raises(Conflict) as again:  # the same payment reported twice: nothing more to do
        decide(paid, "payment_received", args_for("payment_received"), NOW)
    assert again.value.code == "nothing_to_apply"


def test_payment_requested_during_processing_stops_the_clock_until_paid():
    state = make_state("processing", appointment=dt.date(2026, 3, 10))
    friday = dt.datetime(2026, 2, 27, 3, 0, tzinfo=dt.UTC)
    [(event_type, data)] = decide(state, "request_payment", args_for("request_payment"), friday)
    waiting = evolve(state, event_type, data, friday)
    assert waiting.status == "awaiting_payment" and waiting.clock_stopped_on == dt.date(2026, 2, 27)
    assert not waiting.is_overdue_on(dt.date(2026, 4, 1))
    with pytest.raises(Conflict):
        decide(waiting, "result", {"documents": [DOC]}, NOW)
    [(event_type, data)] = decide(waiting, "payment_received", args_for("payment_received"), NOW)
    assert data["paused_working_days"] == 1 and data["appointment_date"] == "2026-03-11"
    paid = evolve(waiting, event_type, data, NOW)
    assert paid.status == "processing" and paid.appointment_date == dt.date(2026, 3, 11)
    assert paid.clock_stopped_on is None


def test_unpaid_obligation_expires_and_the_agency_may_ask_again():
    state = make_state("processing")
    waiting = evolve(state, *decide(state, "request_payment", args_for("request_payment"), NOW)[0], NOW)
    expired = evolve(waiting, *decide(waiting, "payment_expired", args_for("payment_expired"), NOW)[0], NOW)
    assert expired.status == "payment_expired"
    with pytest.raises(Conflict):
        decide(expired, "payment_expired", args_for("payment_expired"), NOW)
    again = dict(args_for("request_payment"), request_id="7d1f7f0e-0000-4000-8000-00000000000b")
    asked = evolve(expired, *decide(expired, "request_payment", again, NOW)[0], NOW)
    assert asked.status == "awaiting_payment" and asked.payment_return_status == "processing"
    with pytest.raises(InvalidInput):
        decide(state, "request_payment", dict(args_for("request_payment"), amount=0), NOW)


def test_a_receipt_is_attached_once_even_to_a_closed_dossier():
    closed = make_state("withdrawn")
    after = evolve(closed, *decide(closed, "attach_receipt", args_for("attach_receipt"), NOW)[0], NOW)
    assert after.receipts[0]["receipt_no"] == "BL2026-00000001" and after.receipts[0]["kind"] == "receipt"
    with pytest.raises(Conflict):
        decide(after, "attach_receipt", args_for("attach_receipt"), NOW)


# -- fee exemptions ----------------------------------------------------------------------

LLTP_FEES = [{"id": "le-phi", "name": "Lệ phí", "amount": 200000, "due": "before_reception",
              "exemptions": ["Trẻ em", "Người cao tuổi"]},
             {"id": "ban-sao", "name": "Phí bản sao", "amount": 5000, "basis": "per_copy", "due": "with_reception",
              "exemptions": ["Người khuyết tật"]},
             {"name": "Không thu", "amount": 0, "exemptions": ["Trẻ em"]}]


def declared_state(claims: list[dict], status: str = "submitted") -> DossierState:
    state = make_state(status)
    for event_type, data in lifecycle.exemptions_declared(state, LLTP_FEES, claims, NOW):
        state = evolve(state, event_type, data, NOW)
    return state


def test_fees_due_leaves_out_the_exempted_fees():
    before, later = lifecycle.fees_due(LLTP_FEES, copies=2, exempted=["le-phi"])
    assert before == [] and [(f["id"], f["amount"]) for f in later] == [("ban-sao", 10000)]
    before, later = lifecycle.fees_due(LLTP_FEES, exempted=["ban-sao"])
    assert [f["id"] for f in before] == ["le-phi"] and later == []
    assert lifecycle.fees_due(LLTP_FEES) == lifecycle.fees_due(LLTP_FEES, exempted=[])


def test_an_exemption_must_be_one_the_fee_lists():
    assert lifecycle.exemption_problems(LLTP_FEES, [{"fee_id": "le-phi", "exemption": "Trẻ em"}]) == []
    problems = lifecycle.exemption_problems(LLTP_FEES, [
        {"fee_id": "nope", "exemption": "Trẻ em"}, {"fee_id": "le-phi", "exemption": "Sinh viên"},
        {"fee_id": "ban-sao", "exemption": "Người khuyết tật"}, {"fee_id": "ban-sao", "exemption": "Người khuyết tật"},
        {"fee_id": "fee3", "exemption": "Trẻ em"}])
    assert [(p["field"], p["message"]) for p in problems] == [
        ("fee_exemptions.0.fee_id", "not a fee of this procedure"),
        ("fee_exemptions.1.exemption", "not an exemption this fee lists"),
        ("fee_exemptions.3.fee_id", "declared twice"),
        ("fee_exemptions.4.fee_id", "nothing is due for this fee")]
    with pytest.raises(InvalidInput) as refused:
        lifecycle.exemptions_declared(make_state("submitted"), LLTP_FEES, [{"fee_id": "x", "exemption": "y"}], NOW)
    assert refused.value.details[0]["field"] == "fee_exemptions.0.fee_id"


def test_a_declared_exemption_is_recorded_and_shown_exempt():
    state = declared_state([{"fee_id": "le-phi", "exemption": "Trẻ em"}])
    assert state.status == "submitted" and state.payment_requests == {}
    assert state.exemptions["le-phi"] == {
        "fee_id": "le-phi", "fee_name": "Lệ phí", "amount": 200000, "exemption": "Trẻ em",
        "due": "before_reception", "declared_at": NOW.isoformat(), "status": "exempt", "disputed_at": None,
        "dispute_reason": None, "request_id": None}
    assert state.timeline[-1]["event"] == "FeeExemptionDeclared" and state.timeline[-1]["exemption"] == "Trẻ em"


def test_disputing_a_before_reception_fee_makes_the_dossier_wait_for_it():
    state = declared_state([{"fee_id": "le-phi", "exemption": "Trẻ em"}])
    events = decide(state, "dispute_exemption", {"fee_id": "le-phi", "reason": "Đã 30 tuổi", "request_id": RID}, NOW)
    assert [e for e, _ in events] == ["FeeExemptionDisputed", "DossierPaymentRequested"]
    assert events[0][1]["request_id"] == RID and events[1][1]["request_id"] == RID
    assert events[1][1]["amount"] == 200000 and events[1][1]["blocking"] and events[1][1]["stopped_on"] is None
    assert events[1][1]["fees"] == [{"id": "le-phi", "name": "Lệ phí", "amount": 200000, "basis": "fixed",
                                     "copies": 1}]
    after = state
    for event_type, data in events:
        after = evolve(after, event_type, data, NOW)
    assert after.status == "awaiting_payment" and after.payment_return_status == "submitted"
    assert after.exemptions["le-phi"]["status"] == "disputed"
    assert after.exemptions["le-phi"]["dispute_reason"] == "Đã 30 tuổi"
    with pytest.raises(Conflict) as twice:
        decide(after, "dispute_exemption", {"fee_id": "le-phi", "reason": "again", "request_id": RID}, NOW)
    assert twice.value.code == "no_exemption_to_dispute"
    paid = evolve(after, *decide(after, "payment_received", args_for("payment_received"), NOW)[0], NOW)
    assert paid.status == "submitted"


def test_disputing_a_later_fee_during_processing_does_not_hold_the_dossier():
    state = declared_state([{"fee_id": "ban-sao", "exemption": "Người khuyết tật"}], "processing")
    events = decide(state, "dispute_exemption", {"fee_id": "ban-sao", "reason": "x", "request_id": RID}, NOW)
    assert not events[1][1]["blocking"]
    after = state
    for event_type, data in events:
        after = evolve(after, event_type, data, NOW)
    assert after.status == "processing" and after.payment_requests[RID]["status"] == "open"


@pytest.mark.parametrize("status", lifecycle.STATUSES)
def test_an_exemption_may_be_disputed_while_the_dossier_is_open(status):
    state = declared_state([{"fee_id": "le-phi", "exemption": "Trẻ em"}], status)
    args = {"fee_id": "le-phi", "reason": "x", "request_id": RID}
    if status in lifecycle.FINAL:
        with pytest.raises(Conflict) as refused:
            decide(state, "dispute_exemption", args, NOW)
        assert refused.value.code == "transition_not_allowed"
    else:
        assert decide(state, "dispute_exemption", args, NOW)[0][0] == "FeeExemptionDisputed"
    with pytest.raises(Conflict):  # nothing declared for that fee
        decide(state, "dispute_exemption", dict(args, fee_id="ban-sao"), NOW)


def test_with_code_puts_the_drawn_code_wherever_the_stand_in_was():
    stand_in = "H29.01-261207-123456789012345678901234"
    state = DossierState(code=stand_in, version=1, timeline=[{"note": f"filed as {stand_in}", "n": 1}],
                         supplement={stand_in: (stand_in, 2)}, agencies=["H29.01"])
    swapped = with_code(state, stand_in, "H29.01-261207-0007")
    assert swapped.code == "H29.01-261207-0007" and swapped.version == 1
    assert swapped.timeline == [{"note": "filed as H29.01-261207-0007", "n": 1}]
    assert swapped.supplement == {"H29.01-261207-0007": ("H29.01-261207-0007", 2)}
    assert swapped.agencies == ["H29.01"] and stand_in not in repr(swapped)
    assert state.code == stand_in  # the state given is left as it was
