"""The dossier-event handlers that notify applicants, called in a nameko ``worker_factory`` on
the run's real identity schema: one SMS per event however often it comes, an event whose owner
is not known yet comes back (and is given up after the bounded wait), no SMS to a business,
an account without a phone or one that opted out, a failed send retried."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory
from prometheus_client import REGISTRY

from portal_common.errors import Unavailable
from portal_common.eventstore import EventStore
from services.identity.adapters.local import LocalSmsGateway
from services.identity.application import applicant_notices
from services.identity.service import IdentityService


class FlakySms(LocalSmsGateway):
    """The local stand-in, refusing the first ``failures`` messages."""

    def __init__(self, db, failures: int = 0):
        super().__init__(db)
        self.failures = failures

    def send(self, phone: str, text: str, reference: str | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise Unavailable("adapter_unavailable", "down")
        super().send(phone, text, reference)


def _worker(identity_db, sms=None):
    sms = sms or LocalSmsGateway(identity_db)
    parties = SimpleNamespace(bind_db=lambda db: SimpleNamespace(sms=sms))
    return worker_factory(IdentityService, db=identity_db, events=EventStore(identity_db), parties=parties)


def _account(identity_db, role: str = "citizen", phone: str | None = "random", notify: bool = True) -> dict:
    account_id = str(uuid.uuid4())
    if phone == "random":
        phone = f"09{random.randrange(10**8):08d}"
    with identity_db.transaction() as cur:
        cur.execute("INSERT INTO accounts (id, role, identifier, full_name, phone, notify_sms) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (account_id, role, f"t{uuid.uuid4().hex[:18]}", "Nguyễn Văn Thử", phone, notify))
    return {"account_id": account_id, "phone": phone, "kind": "business" if role == "business" else "citizen"}


def _code() -> str:
    """A dossier code no other test of the run has used: its owner is fixed by the first event
    naming it, so a code drawn twice (six random digits did, now and then) would notify the
    first test's owner."""
    return f"G01.TEST-260317-{uuid.uuid4().int % 10**12:012d}"


def _envelope(event_type: str, data: dict, event_id: str | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "event_type": event_type, "schema_version": 1,
            "stream_id": f"dossier-{data['code']}", "stream_type": "dossier", "correlation_id": None,
            "actor": {"kind": "system", "id": "system"}, "data": data}


def _submitted(code: str, owner: dict) -> dict:
    return _envelope("DossierSubmitted", {
        "code": code, "owner": {"account_id": owner["account_id"], "kind": owner["kind"], "subject": "001099012345"},
        "applicant": {"full_name": "Nguyễn Văn Thử"}, "agency": {"code": "G01.TEST"}})


def _outbox(identity_db, phone: str | None) -> list[str]:
    with identity_db.transaction() as cur:
        cur.execute("SELECT body FROM local_sms_outbox WHERE phone = %s ORDER BY id", (phone,))
        return [r["body"] for r in cur.fetchall()]


def _notified_events(identity_db, account_id: str) -> list[dict]:
    return [e.data for e in EventStore(identity_db).read_stream(f"account-{account_id}")
            if e.event_type == "ApplicantNotified"]


def _count(event_type: str, outcome: str, reason: str = "") -> float:
    return REGISTRY.get_sample_value("portal_notifications_total", {
        "channel": "sms", "event_type": event_type, "outcome": outcome, "reason": reason}) or 0.0


def test_a_redelivered_event_sends_one_sms_and_records_one_event(identity_db):
    worker, owner, code = _worker(identity_db), _account(identity_db), _code()
    submitted = _submitted(code, owner)
    duplicates = _count("DossierSubmitted", "skipped", "duplicate")
    worker.notify_submitted(submitted)
    worker.notify_submitted(dict(submitted))
    [text] = _outbox(identity_db, owner["phone"])
    assert code in text and "Thu" not in text
    [event] = _notified_events(identity_db, owner["account_id"])
    assert event == {"account_id": owner["account_id"], "dossier_code": code,
                     "dossier_event_type": "DossierSubmitted", "channel": "sms",
                     "sent_to": owner["phone"][:2] + "******" + owner["phone"][-2:]}
    assert _count("DossierSubmitted", "skipped", "duplicate") == duplicates + 1


def test_an_event_before_its_owner_comes_back_and_is_sent_once_the_owner_is_known(identity_db):
    worker, owner, code = _worker(identity_db), _account(identity_db), _code()
    supplement = _envelope("SupplementRequested", {"code": code, "agency_code": "G01.TEST", "missing": ["x"],
                                                   "reason": "Thiếu giấy của Nguyễn Văn Thử", "due_date": "2026-05-04"})
    with pytest.raises(applicant_notices.OwnerNotKnown):
        worker.notify_supplement_requested(supplement)
    assert _outbox(identity_db, owner["phone"]) == []
    worker.notify_submitted(_submitted(code, owner))
    worker.notify_supplement_requested(supplement)  # the broker brings it back
    texts = _outbox(identity_db, owner["phone"])
    assert len(texts) == 2 and "04/05/2026" in texts[1] and "Thiếu" not in texts[1]
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM notification_waits WHERE event_id = %s", (supplement["event_id"],))
        assert cur.fetchone()["n"] == 0


def test_an_event_whose_owner_never_comes_is_given_up_after_the_wait(identity_db, monkeypatch):
    worker, code = _worker(identity_db), _code()
    result = _envelope("DossierResultReady", {"code": code, "agency_code": "G01.TEST", "documents": []})
    with pytest.raises(applicant_notices.OwnerNotKnown):
        worker.notify_result_ready(result)
    monkeypatch.setattr(applicant_notices, "OWNER_WAIT_S", 0)
    given_up = _count("DossierResultReady", "skipped", "owner_unknown")
    worker.notify_result_ready(result)  # no error: acknowledged, dropped
    assert _count("DossierResultReady", "skipped", "owner_unknown") == given_up + 1
    assert applicant_notices.handle(identity_db, None, None, result) == "duplicate"


@pytest.mark.parametrize(("role", "phone", "notify", "reason"), [
    ("business", "random", True, "not_citizen"),
    ("citizen", None, True, "no_phone"),
    ("citizen", "random", False, "opted_out"),
])
def test_no_sms_and_no_error_for_a_business_no_phone_or_an_opt_out(identity_db, role, phone, notify, reason):
    worker, owner, code = _worker(identity_db), _account(identity_db, role, phone, notify), _code()
    skipped = _count("DossierReceived", "skipped", reason)
    worker.notify_submitted(_submitted(code, owner))
    worker.notify_received(_envelope("DossierReceived", {"code": code, "agency_code": "G01.TEST",
                                                         "appointment_date": "2026-04-02"}))
    assert _outbox(identity_db, owner["phone"]) == []
    assert _notified_events(identity_db, owner["account_id"]) == []
    assert _count("DossierReceived", "skipped", reason) == skipped + 1


def test_internal_steps_send_nothing_but_a_hand_over_teaches_the_owner(identity_db):
    worker, owner, code = _worker(identity_db), _account(identity_db), _code()
    forwarded = _submitted(code, owner)
    forwarded.update(event_type="DossierForwarded")
    worker.learn_forwarded_owner(forwarded)
    assert _outbox(identity_db, owner["phone"]) == []
    worker.notify_rejected(_envelope("DossierRejected", {"code": code, "agency_code": "G01.TEST", "reason": "x"}))
    [text] = _outbox(identity_db, owner["phone"])
    assert code in text and "khong duoc giai quyet" in text


def test_a_failed_send_is_retried_by_the_timer(identity_db):
    sms = FlakySms(identity_db, failures=1)
    worker, owner, code = _worker(identity_db, sms), _account(identity_db), _code()
    worker.notify_submitted(_submitted(code, owner))
    assert _outbox(identity_db, owner["phone"]) == []
    with identity_db.transaction() as cur:
        cur.execute("SELECT status, attempts FROM applicant_notices n "
                    "WHERE n.dossier_code = %s", (code,))
        assert dict(cur.fetchone()) == {"status": "pending", "attempts": 1}
        cur.execute("UPDATE applicant_notices SET next_attempt_at = now() WHERE dossier_code = %s", (code,))
    worker.send_due_notices()
    assert len(_outbox(identity_db, owner["phone"])) == 1
    worker.send_due_notices()
    assert len(_outbox(identity_db, owner["phone"])) == 1
    assert len(_notified_events(identity_db, owner["account_id"])) == 1


def test_a_notice_sent_again_after_a_crash_reaches_the_phone_once(identity_db):
    """The send happened but its record did not (a crash in between): the next send carries the
    same reference, and the gateway keeps one message."""
    owner = _account(identity_db)
    sms = LocalSmsGateway(identity_db)
    reference = str(uuid.uuid4())
    sms.send(owner["phone"], "Ho so G01 da duoc tiep nhan.", reference)
    sms.send(owner["phone"], "Ho so G01 da duoc tiep nhan.", reference)  # the repeat after the crash
    sms.send(owner["phone"], "Ma OTP: 123456")  # messages without a reference are never merged
    sms.send(owner["phone"], "Ma OTP: 123456")
    assert [m["body"] for m in reversed(sms.messages(owner["phone"]))] == [
        "Ho so G01 da duoc tiep nhan.", "Ma OTP: 123456", "Ma OTP: 123456"]
