"""Dossier events handled in batches for the applicants' SMS (``applicant_notices.handle_many``
behind ``portal_common.coalesce``), on the run's real identity schema: a batch of N events
writes N notices, sends N SMS and appends every ``ApplicantNotified`` in one round trip; a
poisoned event fails its batch, then fails alone while the others are sent once; a batch that
comes again sends nothing; an event whose owner the batch does not know, or a second event of
a dossier, is left to be handled alone; a crash between the sends and their record sends
nothing twice through a gateway that honours references."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from portal_common.coalesce import ALONE
from portal_common.db import Database
from portal_common.eventstore import EventContext, EventStore
from services.identity import repository as repo
from services.identity.adapters.local import LocalSmsGateway
from services.identity.application import applicant_notices
from tests.identity.test_notifications_worker import (
    _account,
    _code,
    _count,
    _envelope,
    _notified_events,
    _outbox,
    _submitted,
    _worker,
)
from tests.support.round_trips import count_round_trips

ROOT = Path(__file__).resolve().parents[2]


class CountingBatch(applicant_notices.StatementBatch):
    """``StatementBatch`` that remembers what each round trip it sent held."""

    sent: list[list[bytes]] = []

    def send(self, commit: bool = False) -> None:
        prepared = self._cursor.connection.prepared  # statements run by name, read with their SQL
        CountingBatch.sent.append([*map(prepared.readable, self._statements), *([b"COMMIT"] if commit else [])])
        super().send(commit)


@pytest.fixture
def counting(monkeypatch):
    CountingBatch.sent = []
    monkeypatch.setattr(applicant_notices, "StatementBatch", CountingBatch)
    return CountingBatch.sent


def _alone(identity_db, store, sms, envelopes: list[dict]) -> list[Exception]:
    """What the coalescer does after a failed batch: each message on its own."""
    failures = []
    for envelope in envelopes:
        try:
            applicant_notices.handle(identity_db, store, sms, envelope)
        except Exception as exc:  # the entrypoint would retry this message
            failures.append(exc)
    return failures


def _claims(identity_db, envelopes: list[dict]) -> int:
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM processed_events WHERE consumer = %s AND event_id = ANY(%s::uuid[])",
                    (applicant_notices.CONSUMER, [e["event_id"] for e in envelopes]))
        return cur.fetchone()["n"]


def _notices(identity_db, codes: list[str]) -> dict[str, list[str]]:
    with identity_db.transaction() as cur:
        cur.execute("SELECT dossier_code, status FROM applicant_notices WHERE dossier_code = ANY(%s)", (codes,))
        found: dict[str, list[str]] = {code: [] for code in codes}
        for row in cur.fetchall():
            found[row["dossier_code"]].append(row["status"])
        return found


def _filings(identity_db, n: int) -> tuple[list[dict], list[str], list[dict]]:
    owners = [_account(identity_db) for _ in range(n)]
    codes = [_code() for _ in range(n)]
    return owners, codes, [_submitted(code, owner) for code, owner in zip(codes, owners, strict=True)]


def test_a_batch_of_n_events_sends_n_sms_and_appends_them_all_in_one_round_trip(identity_db, counting):
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    owners, codes, envelopes = _filings(identity_db, 8)
    sent = _count("DossierSubmitted", "sent")
    assert applicant_notices.handle_many(identity_db, store, sms, envelopes) == ["notice"] * 8
    assert _notices(identity_db, codes) == {code: ["sent"] for code in codes}
    for owner, code in zip(owners, codes, strict=True):
        [text] = _outbox(identity_db, owner["phone"])
        assert code in text
        [event] = _notified_events(identity_db, owner["account_id"])
        assert event["dossier_code"] == code and event["sent_to"].startswith(owner["phone"][:2])
    assert _count("DossierSubmitted", "sent") == sent + 8
    # the decision's writes, then the notices closed with their events: each one round trip
    # with its COMMIT, the second one statement for all eight
    decide, record = counting
    assert decide[-1] == b"COMMIT" and sum(b"applicant_notices" in s for s in decide) == 1
    assert record[-1] == b"COMMIT" and len(record) == 2
    assert record[0].startswith(b"SELECT close_sent_notices(") and record[0].count(b"ApplicantNotified") == 8


def test_a_batch_that_comes_again_sends_nothing_again(identity_db):
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    owners, _codes, envelopes = _filings(identity_db, 5)
    applicant_notices.handle_many(identity_db, store, sms, envelopes)
    duplicates = _count("DossierSubmitted", "skipped", "duplicate")
    again = [dict(e) for e in envelopes]
    assert applicant_notices.handle_many(identity_db, store, sms, again) == ["duplicate"] * 5
    assert _alone(identity_db, store, sms, again) == []  # and one by one
    assert _count("DossierSubmitted", "skipped", "duplicate") == duplicates + 10
    for owner in owners:
        assert len(_outbox(identity_db, owner["phone"])) == 1
        assert len(_notified_events(identity_db, owner["account_id"])) == 1


def test_a_poisoned_event_fails_its_batch_then_fails_alone_while_the_others_are_sent_once(identity_db):
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    owners, codes, envelopes = _filings(identity_db, 6)
    poisoned = _submitted(_code(), {"account_id": "x\x00poison", "kind": "citizen"})  # PostgreSQL refuses the NUL
    batch = [*envelopes[:3], poisoned, *envelopes[3:]]
    with pytest.raises(ValueError):
        applicant_notices.handle_many(identity_db, store, sms, batch)
    assert _claims(identity_db, batch) == 0  # nothing of the failed batch was kept
    assert _notices(identity_db, codes) == {code: [] for code in codes}
    failures = _alone(identity_db, store, sms, batch)
    assert len(failures) == 1 and isinstance(failures[0], ValueError)
    assert _notices(identity_db, codes) == {code: ["sent"] for code in codes}
    for owner in owners:
        assert len(_outbox(identity_db, owner["phone"])) == 1
        assert len(_notified_events(identity_db, owner["account_id"])) == 1


def test_an_unknown_owner_and_a_dossiers_second_event_are_left_to_be_handled_alone(identity_db):
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    owner, code, orphan = _account(identity_db), _code(), _code()
    submitted = _submitted(code, owner)
    received = _envelope("DossierReceived", {"code": code, "agency_code": "G01.TEST",
                                             "appointment_date": "2026-04-02"})
    early = _envelope("DossierReceived", {"code": orphan, "agency_code": "G01.TEST",
                                          "appointment_date": "2026-04-02"})
    bad_id = {**_submitted(_code(), owner), "event_id": "not-a-uuid"}
    batch = [submitted, early, received, bad_id]
    assert applicant_notices.handle_many(identity_db, store, sms, batch) == ["notice", ALONE, ALONE, ALONE]
    assert _claims(identity_db, [early, received]) == 0  # their mark undone: the single path decides
    assert len(_outbox(identity_db, owner["phone"])) == 1
    assert applicant_notices.handle(identity_db, store, sms, received) == "notice"
    with pytest.raises(applicant_notices.OwnerNotKnown):
        applicant_notices.handle(identity_db, store, sms, early)
    assert applicant_notices.handle(identity_db, store, sms, bad_id) == "dropped"
    assert len(_outbox(identity_db, owner["phone"])) == 2
    assert [e["dossier_event_type"] for e in _notified_events(identity_db, owner["account_id"])] == [
        "DossierSubmitted", "DossierReceived"]


def test_skips_and_internal_steps_in_a_batch_send_nothing(identity_db):
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    business, opted_out, citizen = (_account(identity_db, "business"), _account(identity_db, notify=False),
                                    _account(identity_db))
    forwarded = _submitted(_code(), citizen)
    forwarded.update(event_type="DossierForwarded")
    batch = [_submitted(_code(), business), _submitted(_code(), opted_out), forwarded]
    skipped = _count("DossierSubmitted", "skipped", "opted_out")
    assert applicant_notices.handle_many(identity_db, store, sms, batch) == ["skipped", "skipped", "ignored"]
    assert _count("DossierSubmitted", "skipped", "opted_out") == skipped + 1
    for account in (business, opted_out, citizen):
        assert _outbox(identity_db, account["phone"]) == []
    # the hand-over taught the owner
    rejected = _envelope("DossierRejected", {"code": forwarded["data"]["code"], "agency_code": "G01.TEST",
                                             "reason": "x"})
    assert applicant_notices.handle_many(identity_db, store, sms, [rejected, _submitted(_code(), citizen)]) == [
        "notice", "notice"]
    assert len(_outbox(identity_db, citizen["phone"])) == 2


def test_a_crash_between_the_sends_and_their_record_sends_nothing_twice(identity_db, monkeypatch):
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    owners, codes, envelopes = _filings(identity_db, 4)

    def crash(cur, event_ids, notified):
        raise ConnectionError("the process died here")

    monkeypatch.setattr(repo, "finish_sent_notices", crash)
    assert applicant_notices.handle_many(identity_db, store, sms, envelopes) == ["notice"] * 4  # acked
    monkeypatch.undo()
    assert _notices(identity_db, codes) == {code: ["pending"] for code in codes}
    with identity_db.transaction() as cur:  # the lease is over
        cur.execute("UPDATE applicant_notices SET next_attempt_at = now() WHERE dossier_code = ANY(%s)", (codes,))
    applicant_notices.deliver_due(identity_db, store, sms)
    assert _notices(identity_db, codes) == {code: ["sent"] for code in codes}
    for owner in owners:
        assert len(_outbox(identity_db, owner["phone"])) == 1  # the same reference: kept once
        assert len(_notified_events(identity_db, owner["account_id"])) == 1


class SlowSms(LocalSmsGateway):
    def send(self, phone: str, text: str, reference: str | None = None) -> None:
        time.sleep(0.05)
        super().send(phone, text, reference)


def test_concurrent_workers_are_handled_in_batches_each_notice_once(identity_db):
    worker = _worker(identity_db, SlowSms(identity_db))
    owners, codes, envelopes = _filings(identity_db, 20)
    threads = [threading.Thread(target=worker.notify_submitted, args=(e,)) for e in [*envelopes, *envelopes[:5]]]
    for t in threads:
        t.start()
        time.sleep(0.002)
    for t in threads:
        t.join(30)
    assert _notices(identity_db, codes) == {code: ["sent"] for code in codes}
    for owner in owners:
        assert len(_outbox(identity_db, owner["phone"])) == 1
        assert len(_notified_events(identity_db, owner["account_id"])) == 1
    [(_, coalescer)] = [v for k, v in applicant_notices._coalescers.items() if v[0][0] is identity_db
                        and v[0][2] is worker.parties.bind_db(None).sms]
    assert max(coalescer.sizes) > 1


def test_with_a_linger_events_a_moment_apart_are_noticed_in_one_batch(identity_db, monkeypatch):
    monkeypatch.setattr(applicant_notices, "EVENT_LINGER_S", 2.0)  # read as the coalescer is made
    worker = _worker(identity_db, SlowSms(identity_db))
    owners, codes, envelopes = _filings(identity_db, 4)
    threads = [threading.Thread(target=worker.notify_submitted, args=(e,)) for e in envelopes]
    for t in threads:
        t.start()
        time.sleep(0.05)  # a moderate rate: each would otherwise be a batch of one
    for t in threads:
        t.join(30)
    assert _notices(identity_db, codes) == {code: ["sent"] for code in codes}
    assert all(len(_outbox(identity_db, owner["phone"])) == 1 for owner in owners)
    [(_, coalescer)] = [v for k, v in applicant_notices._coalescers.items() if v[0][0] is identity_db
                        and v[0][2] is worker.parties.bind_db(None).sms]
    assert coalescer.linger_s == 2.0 and coalescer.sizes == [4]


def test_the_notices_linger_comes_from_the_environment():
    read = [sys.executable, "-c", "from services.identity import settings; print(settings.NOTICE_LINGER_S)"]
    env = {k: v for k, v in os.environ.items() if "NOTIFY_BATCH_LINGER_MS" not in k}
    assert subprocess.run(read, env={**env, "IDENTITY_NOTIFY_BATCH_LINGER_MS": "25"}, capture_output=True,
                          text=True, check=True, cwd=ROOT).stdout.split() == ["0.025"]
    assert subprocess.run(read, env=env, capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.split() == ["0.0"]


def test_a_lone_event_goes_the_batch_way_in_under_half_the_round_trips(migrated_database, monkeypatch):
    """An event with nothing else in flight is a batch of one (``single_batches``): four round
    trips (owner learned, event claimed and whom to notify read; notice written with the
    ``COMMIT``; the SMS; the notice closed and ``ApplicantNotified`` appended with the ``COMMIT``)
    where the one-at-a-time way (``handle``, which ``take`` used for a lone event) sends eleven."""
    db = Database(migrated_database, "identity", size=1)  # one connection: its statements prepared once
    store, sms = EventStore(db), LocalSmsGateway(db)
    trips = count_round_trips(monkeypatch)
    try:
        for envelope in _filings(db, 2)[2]:  # prepares both ways' statements
            applicant_notices.take(db, store, sms, envelope)
            applicant_notices.handle(db, store, sms, _submitted(_code(), _account(db)))
        counts = {}
        for way in (applicant_notices.handle, applicant_notices.take):
            [owner], [code], [envelope] = _filings(db, 1)
            trips.clear()
            assert way(db, store, sms, envelope) == "notice"
            counts[way.__name__] = len(trips)
            assert _notices(db, [code]) == {code: ["sent"]}
            assert len(_outbox(db, owner["phone"])) == 1 and len(_notified_events(db, owner["account_id"])) == 1
        assert counts == {"handle": 11, "take": 4}
    finally:
        db.close()


def test_a_lone_poisoned_event_fails_as_its_own_and_keeps_nothing(identity_db):
    """A lone event's batch of one fails; the one-at-a-time way then raises its failure for the
    entrypoint to retry and park, with nothing of it kept, and the next event is sent."""
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    poisoned = _submitted(_code(), {"account_id": "x\x00poison", "kind": "citizen"})  # PostgreSQL refuses the NUL
    with pytest.raises(ValueError):
        applicant_notices.take(identity_db, store, sms, poisoned)
    assert _claims(identity_db, [poisoned]) == 0
    assert _notices(identity_db, [poisoned["data"]["code"]]) == {poisoned["data"]["code"]: []}
    [owner], [code], [envelope] = _filings(identity_db, 1)
    assert applicant_notices.take(identity_db, store, sms, envelope) == "notice"
    assert _notices(identity_db, [code]) == {code: ["sent"]} and len(_outbox(identity_db, owner["phone"])) == 1


def test_a_notice_closed_meanwhile_gets_no_second_event(identity_db):
    """The close and the appends are one statement: a notice another sender closed first is
    left as it is and gets no ``ApplicantNotified``; the others in the same call do."""
    store, sms = EventStore(identity_db), LocalSmsGateway(identity_db)
    owners, codes, envelopes = _filings(identity_db, 2)
    applicant_notices.handle_many(identity_db, store, sms, envelopes)
    with identity_db.transaction() as cur:
        cur.execute("UPDATE applicant_notices SET status = 'pending' WHERE dossier_code = %s RETURNING *",
                    (codes[1],))
        reopened = cur.fetchone()
        cur.execute("SELECT * FROM applicant_notices WHERE dossier_code = %s", (codes[0],))
        closed = cur.fetchone()
    notices = [closed, reopened]
    notified = [(f"account-{n['account_id']}",
                 store.encode([applicant_notices._notified({**n, "phone": o["phone"]})],
                              EventContext(causation_id=str(n["event_id"]))))
                for n, o in zip(notices, owners, strict=True)]
    with identity_db.transaction() as cur:
        repo.finish_sent_notices(cur, [n["event_id"] for n in notices], notified)
    assert _notices(identity_db, codes) == {code: ["sent"] for code in codes}
    assert len(_notified_events(identity_db, owners[0]["account_id"])) == 1
    assert len(_notified_events(identity_db, owners[1]["account_id"])) == 2
    with identity_db.transaction() as cur, pytest.raises(psycopg2.Error, match="1 ids, <NULL> streams"):
        repo.finish_sent_notices(cur, [closed["event_id"]], [])
