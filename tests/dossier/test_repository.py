"""The dossier repository on real PostgreSQL: commands, refusals, codes, idempotency, reads."""

from __future__ import annotations

import datetime as dt

import psycopg2.extensions
import pytest

from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventSchemaError
from portal_common.eventstore.events import EventContext
from services.dossier import queries
from services.dossier.domain.access import Caller
from services.dossier.domain.calendar import local_date
from services.dossier.domain.codes import parse_code, stream_id
from services.dossier.domain.documents import check_upload
from tests.dossier.conftest import PDF, agency_ctx, applicant_ctx, submit
from tests.support.round_trips import count_round_trips
from tests.support.threads import all_at_once

AGENCY = "H29.01"
RESULT_PDF = b"%PDF-1.7\n% the result\n"


def snapshot_all(repo) -> dict:
    with repo.repository.db.transaction(dict_rows=False) as cur:
        return {name: queries.snapshot(cur, name) for name in queries.PROJECTIONS}


def test_submit_issues_a_code_and_fills_the_projections(repo):
    state, created = submit(repo)
    assert created
    agency, day, seq = parse_code(state.code)
    assert (agency, day, seq) == (AGENCY, local_date(dt.datetime.now(dt.UTC)), 1)
    assert state.status == "submitted" and state.version == 1
    assert state.inputs[0]["sha256"] and state.inputs[0]["kind"] == "input"
    public = repo.lookup(state.code)
    assert public["status"] == "submitted" and public["agency"]["code"] == AGENCY
    assert "Nguyen" not in repr(public)
    assert repo.owner_list("acc-1", None, 1, 20)["total"] == 1
    assert repo.agency_queue(AGENCY, None, None, 1, 20)["items"][0]["code"] == state.code
    events = repo.log.read_stream(stream_id(state.code))
    assert [e.event_type for e in events] == ["DossierSubmitted"]
    assert events[0].metadata["actor"]["id"] == "acc-1"


def test_a_new_dossier_projects_without_deleting_and_an_existing_one_drops_stale_rows(repo):
    """A submission's code was just drawn, so its projections queue no DELETE; any later
    projection of the same state still clears what the state no longer has."""
    state, _ = submit(repo)

    class Recorder:
        def __init__(self):
            self.sql: list[str] = []

        def defer(self, sql, params=None):
            self.sql.append(sql.split()[0])

    new, existing = Recorder(), Recorder()
    queries.project(new, state, new=True)
    queries.project(existing, state)
    assert "DELETE" not in new.sql and new.sql.count("INSERT") == existing.sql.count("INSERT") > 0
    assert existing.sql.count("DELETE") >= 3  # overdue (no row), and the moved keys of two tables


def test_the_whole_lifecycle_through_the_repository(repo):
    state, _ = submit(repo)
    code = state.code
    officer, octx = agency_ctx(AGENCY)
    owner, actx = applicant_ctx("acc-1")
    state = repo.execute(code, "receive", {}, officer, octx)
    assert state.status == "received" and state.appointment_date is not None
    state = repo.execute(code, "start_processing", {}, officer, octx)
    state = repo.execute(code, "request_supplement", {"missing": ["birth certificate"], "reason": "missing"},
                         officer, octx)
    assert state.status == "supplement_requested"
    doc = repo.upload(code, owner, check_upload(None, "cert.pdf", "application/pdf", b"%PDF-1.2 cert", "file"))
    state = repo.execute(code, "supplement", {"note": "here"}, owner, actx, document_ids=[doc["id"]])
    assert state.status == "supplemented" and any(d["id"] == doc["id"] for d in state.inputs)
    state = repo.execute(code, "pause", {"reason": "verification"}, officer, octx)
    state = repo.execute(code, "resume", {}, officer, octx)
    state = repo.execute(code, "start_processing", {}, officer, octx)
    result = check_upload(None, "result.pdf", "application/pdf", RESULT_PDF, "documents.0")
    state = repo.execute(code, "result", {"note": "granted"}, officer, octx, uploads=[result])
    assert state.status == "result_ready" and state.outputs[0]["kind"] == "output"
    state = repo.execute(code, "return_result", {}, officer, octx)
    assert state.status == "returned"
    assert repo.lookup(code)["status"] == "returned"
    ref, content = repo.document(code, state.outputs[0]["id"], owner)
    assert content == RESULT_PDF and ref["name"] == "result.pdf"
    types = [e.event_type for e in repo.log.read_stream(stream_id(code))]
    assert types == ["DossierSubmitted", "DossierReceived", "DossierProcessingStarted", "SupplementRequested",
                     "DossierSupplemented", "DossierPaused", "DossierResumed", "DossierProcessingStarted",
                     "DossierResultReady", "DossierResultReturned"]
    assert [t["event"] for t in state.timeline] == types
    # closed: withdrawing after the result is refused and writes nothing
    before = snapshot_all(repo)
    with pytest.raises(Conflict) as refused:
        repo.execute(code, "withdraw", {}, owner, actx)
    assert refused.value.code == "transition_not_allowed"
    assert refused.value.details == {"state": "returned", "command": "withdraw", "paused": False,
                                     "overdue": False}
    assert repo.log.stream_version(stream_id(code)) == len(types)
    assert snapshot_all(repo) == before


@pytest.mark.parametrize(("path", "command", "args"), [
    ([], "refuse", {"reason": "incomplete"}),
    (["receive"], "reject", {"reason": "not eligible"}),
    (["receive"], "forward", {"to_agency": {"code": "H29.02", "name": "B"}, "reason": "inter-agency"}),
    ([], "withdraw", {"reason": "changed my mind"}),
])
def test_closing_and_forwarding_commands(repo, path, command, args):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)
    for step in path:
        repo.execute(state.code, step, {}, officer, octx)
    caller, ctx = applicant_ctx("acc-1") if command == "withdraw" else (officer, octx)
    after = repo.execute(state.code, command, args, caller, ctx)
    expected = {"refuse": "refused", "reject": "rejected", "forward": "forwarded", "withdraw": "withdrawn"}
    assert after.status == expected[command]
    if command == "forward":
        assert after.agency_code == "H29.02" and after.agencies == [AGENCY, "H29.02"]
        assert repo.agency_queue("H29.02", None, None, 1, 20)["total"] == 1
        assert repo.agency_queue(AGENCY, None, None, 1, 20)["total"] == 0
        # the first agency can still read it but no longer act on it
        assert repo.visible(state.code, officer).code == state.code
        with pytest.raises(Conflict):
            repo.execute(state.code, "start_processing", {}, officer, octx)
        new_officer, nctx = agency_ctx("H29.02")
        assert repo.execute(state.code, "start_processing", {}, new_officer, nctx).status == "processing"
        payload = repo.log.read_stream(stream_id(state.code))[-2].data
        assert payload["applicant"]["full_name"] and payload["documents"][0]["sha256"]


def test_refused_commands_write_nothing(repo):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)
    before = snapshot_all(repo)
    for command, args in [("start_processing", {}), ("result", {}), ("resume", {}), ("return_result", {}),
                          ("extend", {"new_date": dt.date(2030, 1, 1), "reason": "x"})]:
        with pytest.raises(Conflict) as refused:
            repo.execute(state.code, command, args, officer, octx)
        assert refused.value.details["state"] == "submitted"
    with pytest.raises(InvalidInput):
        repo.execute(state.code, "refuse", {"reason": ""}, officer, octx)
    assert repo.log.stream_version(stream_id(state.code)) == 1
    assert snapshot_all(repo) == before


def test_access_control_other_applicant_and_other_agency_get_not_found(repo):
    state, _ = submit(repo, owner="acc-1")
    stranger, sctx = applicant_ctx("acc-2")
    other_agency, actx = agency_ctx("H99.99")
    for caller in (stranger, other_agency):
        with pytest.raises(NotFound) as hidden:
            repo.visible(state.code, caller)
        assert hidden.value.code == "dossier_not_found"
    with pytest.raises(NotFound) as unknown:
        repo.visible("H29.01-260101-9999", stranger)
    assert unknown.value.code == hidden.value.code and unknown.value.message == hidden.value.message
    with pytest.raises(NotFound):
        repo.execute(state.code, "withdraw", {}, stranger, sctx)
    with pytest.raises(NotFound):
        repo.execute(state.code, "receive", {}, other_agency, actx)
    with pytest.raises(NotFound):
        repo.document(state.code, state.inputs[0]["id"], stranger)
    with pytest.raises(NotFound):
        repo.visible("not a code; DROP TABLE events", stranger)
    # an applicant cannot run agency commands on their own dossier
    owner, octx = applicant_ctx("acc-1")
    with pytest.raises(Conflict):
        repo.execute(state.code, "receive", {}, owner, octx)


def test_codes_have_no_gap_or_duplicate_under_concurrent_submissions(repo):
    """90 submitters at once over three agencies, every fifth one failing at its last write."""
    agencies = ("H29.01", "H29.02", "T01.7")
    codes: list[str] = []
    failed: list[int] = []

    def one(i: int) -> None:
        if i % 5 == 4:  # refused by the event contract after the code was drawn: must give it back
            with pytest.raises(EventSchemaError):
                submit(repo, owner=f"acc-{i}", agency=agencies[i % 3], kind="robot")
            failed.append(i)
            return
        state, _ = submit(repo, owner=f"acc-{i}", agency=agencies[i % 3], content=PDF + str(i).encode())
        codes.append(state.code)

    _, errors = all_at_once(one, 90)
    assert not errors and len(failed) == 18 and len(codes) == 72 == len(set(codes))
    for agency in agencies:
        mine = [c for c in codes if parse_code(c)[0] == agency]
        assert sorted(parse_code(c)[2] for c in mine) == list(range(1, len(mine) + 1)), agency
        assert {parse_code(c)[1] for c in mine} == {local_date(dt.datetime.now(dt.UTC))}
    with repo.repository.db.transaction(dict_rows=False) as cur:  # the failed ones left nothing behind
        cur.execute("SELECT count(*) FROM documents")
        assert cur.fetchone()[0] == 72
        cur.execute("SELECT count(*) FROM dossier_status")
        assert cur.fetchone()[0] == 72
        cur.execute("SELECT count(*) FROM events")
        assert cur.fetchone()[0] == 72


def test_the_daily_sequence_restarts_each_local_day(repo):
    # 16:59 and 17:00 UTC on 2 March are 23:59 on 2 March and 00:00 on 3 March in Hanoi
    late, _ = submit(repo, now=dt.datetime(2026, 3, 2, 16, 59, tzinfo=dt.UTC))
    next_day, _ = submit(repo, now=dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC))
    again, _ = submit(repo, now=dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC))
    assert [late.code, next_day.code, again.code] == [
        "H29.01-260302-0001", "H29.01-260303-0001", "H29.01-260303-0002"]


def test_idempotent_submission(repo):
    first, created = submit(repo, key="key-1")
    again, created_again = submit(repo, key="key-1")
    assert created and not created_again and again.code == first.code
    with pytest.raises(Conflict) as reused:
        submit(repo, key="key-1", name="Someone Else")
    assert reused.value.code == "idempotency_key_reused"
    other_owner, _ = submit(repo, owner="acc-9", key="key-1")
    assert other_owner.code != first.code
    # concurrent retries of one key give one dossier
    results, _ = all_at_once(lambda _: submit(repo, key="key-2")[0].code, 8)
    assert len(set(results)) == 1 and len(results) == 8
    assert repo.owner_list("acc-1", None, 1, 100)["total"] == 2


def test_a_key_is_looked_up_before_filing_in_one_round_trip(repo, monkeypatch):
    """The pre-check of a filing's Idempotency-Key reads without a transaction: a new key (the
    usual case) costs one round trip, where ``BEGIN`` with the read and then ``COMMIT`` took two."""
    first, _ = submit(repo, key="key-read")
    with repo.repository.reading() as tx:
        digest, code = repo.repository.key_record(tx, "acc-1", "key-read")
    assert code == first.code
    trips = count_round_trips(monkeypatch)
    assert repo.submitted_with("acc-1", "key-new", digest) is None
    assert trips == ["statement"]
    assert repo.submitted_with("acc-1", "key-read", digest).code == first.code
    with pytest.raises(Conflict):
        repo.submitted_with("acc-1", "key-read", "another filing")
    with repo.repository.db.connection() as conn:  # handed back outside any transaction
        assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_concurrent_commands_on_one_dossier_apply_once(repo):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)

    def receive(_: int) -> str:
        try:
            repo.execute(state.code, "receive", {}, officer, octx)
            return "ok"
        except Conflict as exc:
            return exc.code
        except Exception as exc:
            return repr(exc)

    outcomes, _ = all_at_once(receive, 6)
    assert outcomes.count("ok") == 1
    assert set(outcomes) <= {"ok", "transition_not_allowed", "concurrent_update"}
    assert [e.event_type for e in repo.log.read_stream(stream_id(state.code))].count("DossierReceived") == 1


def test_time_travel_reads_the_past_state(repo):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)
    owner, _ = applicant_ctx("acc-1")
    repo.execute(state.code, "receive", {}, officer, octx)
    events = repo.log.read_stream(stream_id(state.code))
    between = events[0].occurred_at + (events[1].occurred_at - events[0].occurred_at) / 2
    repo.execute(state.code, "start_processing", {}, officer, octx)
    assert repo.visible(state.code, owner).status == "processing"
    past = repo.visible(state.code, owner, as_of=between)
    assert past.status == "submitted" and past.version == 1
    # the moment a timeline entry shows includes that entry
    moment = dt.datetime.fromisoformat(repo.load(state.code).timeline[1]["at"])
    assert repo.visible(state.code, owner, as_of=moment).status == "received"
    with pytest.raises(NotFound):
        repo.visible(state.code, owner, as_of=events[0].occurred_at - dt.timedelta(seconds=1))
    # what an auditor sees on a past day: a history recorded with its own dates
    old, _ = submit(repo, now=dt.datetime(2026, 3, 2, 3, tzinfo=dt.UTC))
    repo.execute(old.code, "receive", {}, officer, octx, now=dt.datetime(2026, 3, 3, 3, tzinfo=dt.UTC))
    repo.execute(old.code, "reject", {"reason": "not eligible"}, officer, octx,
                 now=dt.datetime(2026, 3, 9, 3, tzinfo=dt.UTC))
    on_day = {day: repo.visible(old.code, owner, as_of=dt.datetime(2026, 3, day, 12, tzinfo=dt.UTC)).status
              for day in (2, 5, 10)}
    assert on_day == {2: "submitted", 5: "received", 10: "rejected"}


def test_overdue_job_marks_each_dossier_once_and_extension_clears_it(repo):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)
    received = repo.execute(state.code, "receive", {}, officer, octx)
    later = dt.datetime.combine(received.appointment_date + dt.timedelta(days=2), dt.time(5), dt.UTC)
    assert repo.mark_overdue(now=dt.datetime.now(dt.UTC)) == []
    assert repo.mark_overdue(now=later) == [state.code]
    assert repo.mark_overdue(now=later) == []
    assert repo.agency_queue(AGENCY, None, True, 1, 20)["total"] == 1
    with repo.repository.db.transaction() as cur:
        cur.execute("SELECT code FROM overdue_dossiers")
        assert [r["code"] for r in cur.fetchall()] == [state.code]
    new_date = received.appointment_date + dt.timedelta(days=30)
    extended = repo.execute(state.code, "extend", {"new_date": new_date, "reason": "We apologise."},
                            officer, octx, now=later)
    assert not extended.overdue and extended.appointment_date == new_date
    assert repo.agency_queue(AGENCY, None, True, 1, 20)["total"] == 0


def test_paused_dossiers_are_not_marked_overdue(repo):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)
    received = repo.execute(state.code, "receive", {}, officer, octx)
    repo.execute(state.code, "pause", {"reason": "waiting"}, officer, octx)
    later = dt.datetime.combine(received.appointment_date + dt.timedelta(days=3), dt.time(5), dt.UTC)
    assert repo.mark_overdue(now=later) == []


def test_documents_are_content_addressed(repo):
    a, _ = submit(repo, owner="acc-1")
    b, _ = submit(repo, owner="acc-2")
    assert a.inputs[0]["sha256"] == b.inputs[0]["sha256"] and a.inputs[0]["id"] != b.inputs[0]["id"]
    with repo.repository.db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT count(*) FROM blobs")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM documents")
        assert cur.fetchone()[0] == 2


def test_supplement_with_another_dossiers_document_is_refused(repo):
    mine, _ = submit(repo, owner="acc-1")
    theirs, _ = submit(repo, owner="acc-2")
    officer, octx = agency_ctx(AGENCY)
    repo.execute(mine.code, "receive", {}, officer, octx)
    repo.execute(mine.code, "request_supplement", {"missing": ["x"], "reason": "x"}, officer, octx)
    owner, actx = applicant_ctx("acc-1")
    with pytest.raises(InvalidInput):
        repo.execute(mine.code, "supplement", {}, owner, actx, document_ids=[theirs.inputs[0]["id"]])
    with pytest.raises(InvalidInput):
        repo.execute(mine.code, "supplement", {}, owner, actx, document_ids=["not-a-uuid"])
    assert repo.load(mine.code).status == "supplement_requested"


def test_system_caller_can_only_mark_overdue(repo):
    state, _ = submit(repo)
    with pytest.raises(Conflict):
        repo.execute(state.code, "receive", {}, Caller("system"), EventContext())


def test_staged_uploads_are_bounded(repo, monkeypatch):
    monkeypatch.setenv("DOSSIER_MAX_DOCUMENTS_PER_DOSSIER", "3")
    state, _ = submit(repo)
    owner, _ = applicant_ctx("acc-1")
    for i in range(2):
        repo.upload(state.code, owner, check_upload(None, f"{i}.pdf", "application/pdf", PDF + bytes([i]), "file"))
    with pytest.raises(Conflict) as full:
        repo.upload(state.code, owner, check_upload(None, "x.pdf", "application/pdf", PDF, "file"))
    assert full.value.code == "too_many_documents"
    stranger, _ = applicant_ctx("acc-2")
    with pytest.raises(NotFound):
        repo.upload(state.code, stranger, check_upload(None, "x.pdf", "application/pdf", PDF, "file"))


def test_owner_list_filters(repo):
    day1 = dt.datetime(2026, 3, 2, 3, tzinfo=dt.UTC)
    a, _ = submit(repo, now=day1)
    b, _ = submit(repo, now=day1 + dt.timedelta(days=2))
    submit(repo, owner="acc-2", now=day1)
    officer, octx = agency_ctx(AGENCY)
    repo.execute(b.code, "receive", {}, officer, octx)
    listed = repo.owner_list("acc-1", None, 1, 20)
    assert [i["code"] for i in listed["items"]] == [b.code, a.code] and listed["total"] == 2  # newest first
    assert [i["code"] for i in repo.owner_list("acc-1", "received", 1, 20)["items"]] == [b.code]
    assert repo.owner_list("acc-1", None, 1, 20, procedure_code="9.999")["total"] == 0
    assert repo.owner_list("acc-1", None, 1, 20, procedure_code="1.000001")["total"] == 2
    on_day1 = repo.owner_list("acc-1", None, 1, 20, submitted_from=dt.date(2026, 3, 2),
                              submitted_to=dt.date(2026, 3, 2))
    assert [i["code"] for i in on_day1["items"]] == [a.code]
    assert repo.owner_list("acc-1", None, 1, 20, submitted_from=dt.date(2026, 3, 3))["total"] == 1
    page2 = repo.owner_list("acc-1", None, 2, 1)
    assert [i["code"] for i in page2["items"]] == [a.code] and page2["total"] == 2


def test_agency_queue_holds_open_dossiers_due_soonest_first(repo):
    officer, octx = agency_ctx(AGENCY)
    monday = dt.datetime(2026, 3, 2, 3, tzinfo=dt.UTC)
    late, _ = submit(repo, now=monday)
    soon, _ = submit(repo, now=monday)
    waiting, _ = submit(repo, now=monday)
    closed, _ = submit(repo, now=monday)
    repo.execute(late.code, "receive", {}, officer, octx, now=monday + dt.timedelta(days=3))
    repo.execute(soon.code, "receive", {}, officer, octx, now=monday)
    repo.execute(closed.code, "refuse", {"reason": "incomplete"}, officer, octx)
    queue = repo.agency_queue(AGENCY, None, None, 1, 20)
    assert [i["code"] for i in queue["items"]] == [soon.code, late.code, waiting.code]
    assert [i["code"] for i in repo.agency_queue(AGENCY, "refused", None, 1, 20)["items"]] == [closed.code]
    assert repo.agency_queue(AGENCY, "received", None, 1, 20)["total"] == 2


def test_the_overdue_job_works_through_every_batch(repo):
    officer, octx = agency_ctx(AGENCY)
    long_ago = dt.datetime(2025, 1, 6, 3, tzinfo=dt.UTC)
    codes = []
    for i in range(7):
        state, _ = submit(repo, owner=f"acc-{i}", now=long_ago)
        repo.execute(state.code, "receive", {}, officer, octx, now=long_ago)
        codes.append(state.code)
    repo.execute(codes[0], "pause", {"reason": "waiting for the applicant"}, officer, octx, now=long_ago)
    marked = repo.mark_overdue(batch=2)
    assert sorted(marked) == sorted(codes[1:])
    assert repo.mark_overdue(batch=2) == []
    assert repo.agency_queue(AGENCY, None, True, 1, 20)["total"] == 6


def test_extending_a_past_due_dossier_before_the_job_records_both_events(repo):
    state, _ = submit(repo)
    officer, octx = agency_ctx(AGENCY)
    received = repo.execute(state.code, "receive", {}, officer, octx)
    later = dt.datetime.combine(received.appointment_date + dt.timedelta(days=2), dt.time(5), dt.UTC)
    new_date = received.appointment_date + dt.timedelta(days=20)
    extended = repo.execute(state.code, "extend", {"new_date": new_date, "reason": "Chúng tôi xin lỗi."},
                            officer, octx, now=later)
    assert extended.appointment_date == new_date and not extended.overdue
    types = [e.event_type for e in repo.log.read_stream(stream_id(state.code))]
    assert types[-2:] == ["DossierBecameOverdue", "DeadlineExtended"]
    assert repo.mark_overdue(now=later) == []  # the new date is ahead
    apology = extended.timeline[-1]
    assert apology["reason"] == "Chúng tôi xin lỗi."
    assert apology["previous_date"] == received.appointment_date.isoformat()


def _at(day: dt.date, hour: int = 3) -> dt.datetime:
    """10:00 in Hanoi on ``day``."""
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def test_the_clock_across_tet_weekends_and_a_pause(repo):
    """Received Mon 9 Feb 2026 (3 working days: Thu 12), paused Wed 11, resumed Tue 24 after Tết (16-20 Feb)."""
    officer, octx = agency_ctx(AGENCY)
    state, _ = submit(repo, now=_at(dt.date(2026, 2, 9)))
    received = repo.execute(state.code, "receive", {}, officer, octx, now=_at(dt.date(2026, 2, 9)))
    assert received.appointment_date == dt.date(2026, 2, 12)
    repo.execute(state.code, "pause", {"reason": "chờ xác minh"}, officer, octx, now=_at(dt.date(2026, 2, 11)))
    # paused: never overdue, however long the pause
    assert repo.mark_overdue(now=_at(dt.date(2026, 2, 23))) == []
    resumed = repo.execute(state.code, "resume", {}, officer, octx, now=_at(dt.date(2026, 2, 24)))
    # lost: Thu 12, Fri 13, Mon 23, Tue 24 (weekends and Tết do not count) -> 12 Feb + 4 working days
    assert resumed.appointment_date == dt.date(2026, 2, 25)
    assert resumed.timeline[-1]["resumed_on"] == "2026-02-24"
    assert repo.lookup(state.code)["appointment_date"] == "2026-02-25"
    assert repo.mark_overdue(now=_at(dt.date(2026, 2, 25))) == []  # due today: not late yet
    assert repo.mark_overdue(now=_at(dt.date(2026, 2, 26))) == [state.code]


def test_reception_just_before_tet_counts_only_working_days(repo):
    officer, octx = agency_ctx(AGENCY)
    state, _ = submit(repo, now=_at(dt.date(2026, 2, 13)))  # Friday before Tết
    received = repo.execute(state.code, "receive", {}, officer, octx, now=_at(dt.date(2026, 2, 13)))
    assert received.appointment_date == dt.date(2026, 2, 25)  # Mon 23, Tue 24, Wed 25
    late_evening = dt.datetime(2026, 2, 13, 16, 30, tzinfo=dt.UTC)  # 23:30 Friday in Hanoi: still Friday
    other, _ = submit(repo, owner="acc-2", now=late_evening)
    again = repo.execute(other.code, "receive", {}, officer, octx, now=late_evening)
    assert again.appointment_date == dt.date(2026, 2, 25)
