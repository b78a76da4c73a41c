"""The local stand-ins: each keeps its own records in its own table of identity's schema
(``local_carrier_records``, ``local_bhxh_records``, ``local_sms_outbox``), filled through the
dev endpoints, so development and tests need no outside party."""

from __future__ import annotations

import datetime as dt

from portal_common.db import Database, Prepared
from services.identity.adapters import InsuredRecord, SubscriberRecord

OUTBOX_KEEP = 500  # messages per phone kept in the outbox


class LocalCarrierRegistry:
    def __init__(self, db: Database):
        self.db = db

    def subscriber(self, phone: str) -> SubscriberRecord | None:
        with self.db.transaction() as cur:
            cur.execute("SELECT phone, cccd, carrier FROM local_carrier_records WHERE phone = %s", (phone,))
            row = cur.fetchone()
        return SubscriberRecord(row["phone"], row["cccd"], row["carrier"]) if row else None

    def put(self, phone: str, cccd: str, carrier: str = "local") -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO local_carrier_records (phone, cccd, carrier) VALUES (%s, %s, %s) "
                "ON CONFLICT (phone) DO UPDATE SET cccd = excluded.cccd, carrier = excluded.carrier",
                (phone, cccd, carrier),
            )


class LocalSocialInsuranceRegistry:
    def __init__(self, db: Database):
        self.db = db

    def insured(self, bhxh_code: str) -> InsuredRecord | None:
        with self.db.transaction() as cur:
            cur.execute("SELECT bhxh_code, cccd, full_name, date_of_birth FROM local_bhxh_records "
                        "WHERE bhxh_code = %s", (bhxh_code,))
            row = cur.fetchone()
        return InsuredRecord(row["bhxh_code"], row["cccd"], row["full_name"], row["date_of_birth"]) if row else None

    def put(self, bhxh_code: str, cccd: str, full_name: str, date_of_birth: dt.date) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO local_bhxh_records (bhxh_code, cccd, full_name, date_of_birth) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (bhxh_code) DO UPDATE SET cccd = excluded.cccd, full_name = excluded.full_name, "
                "date_of_birth = excluded.date_of_birth",
                (bhxh_code, cccd, full_name, date_of_birth),
            )


class LocalSmsGateway:
    """Sends nothing: writes each message to the outbox a developer can read."""

    def __init__(self, db: Database):
        self.db = db

    def send(self, phone: str, text: str, reference: str | None = None) -> None:
        """Keeps one message per ``reference``, as a gateway with client references does."""
        self.db.statement(Prepared("INSERT INTO local_sms_outbox (phone, body, reference) VALUES (%s, %s, %s) "
                                   "ON CONFLICT (reference) WHERE reference IS NOT NULL DO NOTHING"),
                          (phone, text, reference))

    def messages(self, phone: str | None, limit: int = 50) -> list[dict]:
        with self.db.transaction() as cur:
            if phone:
                cur.execute("SELECT id, phone, body, sent_at FROM local_sms_outbox WHERE phone = %s "
                            "ORDER BY id DESC LIMIT %s", (phone, limit))
            else:
                cur.execute("SELECT id, phone, body, sent_at FROM local_sms_outbox ORDER BY id DESC LIMIT %s",
                            (limit,))
            return [dict(r, sent_at=r["sent_at"].isoformat()) for r in cur.fetchall()]
