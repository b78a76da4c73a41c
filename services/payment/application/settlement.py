"""Reconciliation with the platform's settlement file, the local stand-in platform's side,
and the periodic work.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import eventlet

from portal_common.errors import InvalidInput, NotFound, Unavailable
from portal_common.eventstore.events import utcnow
from services.payment import platform, settings
from services.payment import repository as repo
from services.payment.application.base import (
    LOCAL_TZ,
    Base,
    log,
    parse_day,
    system_context,
)
from services.payment.domain import reconcile, signing

RECONCILE_RETRY_S = 300.0
_reconcile_not_before = 0.0  # this process's pause after the platform's file could not be had


class SettlementCases(Base):
    """Reconciliation, the stand-in platform, the periodic work."""

    # -- reconciliation --------------------------------------------------------------------

    def reconcile(self, day: Any) -> dict[str, Any]:
        """Compare the platform's settlement file of ``day`` with our payments; every new
        mismatch becomes a SettlementMismatchFound event and a row operators list. Nothing
        else changes."""
        day = parse_day(day)
        start = dt.datetime.combine(day, dt.time(0), LOCAL_TZ)
        with self.db.transaction(dict_rows=False) as cur:
            there = platform.platform().settlement(repo.dict_cursor(cur), day)
            here = repo.rows(cur, "SELECT id::text AS payment_id, reference, amount FROM payments "
                                  "WHERE paid_at >= %s AND paid_at < %s AND status IN ('succeeded', 'refunded')",
                             (start, start + dt.timedelta(days=1)))
            matched, mismatches = reconcile.compare(there, here)
            found = []
            for m in mismatches:
                cur.execute("INSERT INTO settlement_mismatches (day, kind, reference, payment_id, amount_here, "
                            "amount_there) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (day, m["kind"], m["reference"], m["payment_id"], m["amount_here"], m["amount_there"]))
                if cur.rowcount == 1:
                    found.append(("SettlementMismatchFound", {"date": day.isoformat(), **m}))
            summary = {"date": day.isoformat(), "matched": matched, "mismatches": len(mismatches)}
            cur.execute("INSERT INTO settlement_runs (day, matched, mismatches) VALUES (%s, %s, %s) ON CONFLICT (day) "
                        "DO UPDATE SET matched = EXCLUDED.matched, mismatches = EXCLUDED.mismatches, run_at = now()",
                        (day, matched, len(mismatches)))
            self._append(cur, f"settlement-{day.isoformat()}", None, [*found, ("SettlementReconciled", summary)],
                         system_context())
        for _, m in found:
            log.warning("settlement mismatch", extra={"mismatch": m["kind"], "reference": m["reference"]})
        return {**summary, "items": mismatches, "new": len(found)}

    def mismatches(self, day: Any = None) -> list[dict[str, Any]]:
        with self.db.transaction(dict_rows=False) as cur:
            if day in (None, ""):
                found = repo.rows(cur, "SELECT * FROM settlement_mismatches ORDER BY id DESC LIMIT 500")
            else:
                found = repo.rows(cur, "SELECT * FROM settlement_mismatches WHERE day = %s ORDER BY id",
                                  (parse_day(day),))
        return [{**m, "day": m["day"].isoformat(), "found_at": m["found_at"].isoformat(),
                 "payment_id": str(m["payment_id"]) if m["payment_id"] else None} for m in found]

    def reconcile_yesterday(self, now: dt.datetime | None = None) -> dict[str, Any] | None:
        """The daily job: once the local day has turned (after 01:00), reconcile the day before, once."""
        global _reconcile_not_before
        now = (now or utcnow()).astimezone(LOCAL_TZ)
        if now.hour < 1 or not platform.configured() or time.monotonic() < _reconcile_not_before:
            return None
        yesterday = now.date() - dt.timedelta(days=1)
        with self.db.transaction(dict_rows=False) as cur:
            if repo.one(cur, "SELECT day FROM settlement_runs WHERE day = %s", (yesterday,)):
                return None
        try:
            return self.reconcile(yesterday)
        except Unavailable as exc:  # the platform's file is not to be had now: try again later
            _reconcile_not_before = time.monotonic() + RECONCILE_RETRY_S
            log.warning("settlement file unavailable", extra={"date": yesterday.isoformat(), "reason": exc.code})
            return None

    # -- the local stand-in platform --------------------------------------------------------

    def platform_complete(self, payment_id: Any, outcome: str) -> dict[str, Any]:
        try:
            payment_id = str(uuid.UUID(str(payment_id)))
        except ValueError:
            raise NotFound("payment_not_found", "The platform has no such payment.") from None
        if outcome not in ("success", "failure"):
            raise InvalidInput("invalid_outcome", "outcome is success or failure.")
        with self.db.transaction() as cur:
            result = platform.stand_in().complete(cur, payment_id, outcome, utcnow())
        eventlet.spawn_n(self.deliver_notifications)  # sent after the answer, as the platform would
        return result

    def deliver_notifications(self) -> int:
        """Send the stand-in's due notifications (each row leased while it is being sent)."""
        if not settings.local_adapters():
            return 0
        stand_in = platform.LocalPlatform()
        sent = 0
        for _round in range(20):
            with self.db.transaction() as cur:
                due = stand_in.due_notifications(cur, 20)
                for n in due:
                    cur.execute("UPDATE platform_notifications SET next_attempt_at = now() + interval '30 seconds' "
                                "WHERE id = %s", (n["id"],))
            if not due:
                return sent
            for n in due:
                error = stand_in.send(n["body"])
                with self.db.transaction() as cur:
                    stand_in.mark(cur, n["id"], n["attempts"] + 1, error)
                sent += error is None
        return sent

    def platform_settlements(self, day: Any) -> dict[str, Any]:
        """The stand-in's settlement file of a day, signed with the merchant secret."""
        day = parse_day(day)
        with self.db.transaction() as cur:
            lines = platform.stand_in().settlement(cur, day)
        merchant = settings.merchant_code()
        return {"date": day.isoformat(), "merchant": merchant, "items": lines,
                "total": sum(int(x["amount"]) * (1 if x["kind"] == "payment" else -1) for x in lines),
                "checksum": signing.settlement_sign(day.isoformat(), merchant, lines, platform.current_secret())}

    def platform_page(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.db.transaction() as cur:
            return platform.stand_in().page(cur, {k: str(v) for k, v in (fields or {}).items()})

    def platform_api(self, body: Any) -> dict[str, Any]:
        """The stand-in's merchant API (``querydr``, ``refund``): a signed answer to a signed request."""
        with self.db.transaction() as cur:
            return platform.stand_in().api(cur, body, utcnow())

    def tick(self) -> None:
        """The periodic work: send the stand-in's notifications, render receipts, ask about stale
        payments, finish refunds, run the daily reconciliation. (Charges expire in ``expire_due``, its own timer.)"""
        self.deliver_notifications()
        self.render_receipts()
        self.check_pending()
        self.process_refunds()
        self.reconcile_yesterday()


