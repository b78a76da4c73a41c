"""The SMS texts about a dossier's steps: which events notify, short, plain GSM-7, the code and
the status only (no name, CCCD or agency free text)."""

from __future__ import annotations

import pytest

from services.identity.domain import notifications as notices

CODE = "G01.UBND.XA-260317-0042"
PERSONAL = ("Nguyễn", "Nguyen Van Thu", "001099012345", "0912345678")
DATA = {
    "code": CODE,
    "agency_code": "G01.UBND.XA",
    "owner": {"account_id": "2b1c5a0e-7d1f-4a43-9d0a-1e6d2f0b9c11", "kind": "citizen", "subject": "001099012345"},
    "applicant": {"full_name": "Nguyễn Văn Thử", "cccd": "001099012345", "phone": "0912345678"},
    "appointment_date": "2026-04-02",
    "due_date": "2026-03-31",
    "new_date": "2026-04-15",
    "reason": "Ông Nguyen Van Thu (CCCD 001099012345, 0912345678) thiếu giấy",
    "missing": ["Giấy khai sinh của Nguyen Van Thu"],
    "note": "gọi 0912345678",
}


@pytest.mark.parametrize("event_type", sorted(notices.NOTIFYING))
def test_every_notifying_event_has_a_short_plain_text_with_the_code_and_nothing_personal(event_type):
    text = notices.sms_text(event_type, DATA)
    assert text is not None and CODE in text
    assert len(text) <= notices.SMS_LIMIT, (len(text), text)
    assert notices.is_plain_gsm(text), text
    assert text.isascii()
    for secret in PERSONAL:
        assert secret not in text
    assert "Cong dich vu cong" in text


def test_the_notifying_events_are_the_applicants_steps():
    expected = {"DossierSubmitted", "DossierReceived", "DossierRefused", "SupplementRequested", "DeadlineExtended",
                "DossierResultReady", "DossierRejected"}
    assert set(notices.NOTIFYING) == expected
    for internal in ("DossierProcessingStarted", "DossierPaused", "DossierResumed", "DossierForwarded",
                     "DossierSupplemented", "DossierWithdrawn", "DossierResultReturned", "DeliverySent"):
        assert notices.sms_text(internal, DATA) is None


def test_dates_are_written_day_first():
    assert "02/04/2026" in notices.sms_text("DossierReceived", DATA)
    assert "truoc ngay 31/03/2026" in notices.sms_text("SupplementRequested", DATA)
    assert "15/04/2026" in notices.sms_text("DeadlineExtended", DATA)


def test_a_missing_date_or_a_bad_code_leaves_the_date_out_or_sends_nothing():
    no_due = notices.sms_text("SupplementRequested", {"code": CODE, "due_date": None})
    assert no_due is not None and "truoc ngay" not in no_due
    assert "Ngay hen" not in notices.sms_text("DossierReceived", {"code": CODE, "appointment_date": "garbage"})
    for code in (None, "", "X Y", "mã-hồ-sơ", "A" * 81, 42):
        assert notices.sms_text("DossierResultReady", {"code": code}) is None


def test_owner_comes_from_submitted_and_forwarded_only():
    assert notices.owner_of("DossierSubmitted", DATA) == (DATA["owner"]["account_id"], "citizen")
    assert notices.owner_of("DossierForwarded", DATA) == (DATA["owner"]["account_id"], "citizen")
    assert notices.owner_of("DossierReceived", DATA) is None
    assert notices.owner_of("DossierSubmitted", {"code": CODE}) is None


@pytest.mark.parametrize(("account", "reason"), [
    (None, "no_account"),
    ({"role": "business", "phone": "0912345678", "notify_sms": True}, "not_citizen"),
    ({"role": "officer", "phone": "0912345678", "notify_sms": True}, "not_citizen"),
    ({"role": "citizen", "phone": None, "notify_sms": True}, "no_phone"),
    ({"role": "citizen", "phone": "0912345678", "notify_sms": False}, "opted_out"),
    ({"role": "citizen", "phone": "0912345678", "notify_sms": True}, None),
])
def test_who_gets_an_sms(account, reason):
    assert notices.skip_reason(account) == reason


def test_plain_gsm_refuses_diacritics_and_extension_characters():
    assert notices.is_plain_gsm("Ho so A-1 da co ket qua.")
    assert not notices.is_plain_gsm("Hồ sơ")
    assert not notices.is_plain_gsm("a{b}")
