"""The platform's signed notification, applied once; a stale pending payment asked about.

The payment's row lock serialises concurrent notifications of one payment, and its charges'
row locks a success against the charge's expiry, so a duplicate, late or out-of-order
notification is decided on the state the first one left.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from portal_common.context import event_context
from portal_common.errors import Conflict, NotFound, Unauthorized, Unavailable
from portal_common.eventstore import ConcurrencyError
from portal_common.eventstore.events import EventContext, utcnow
from services.payment import platform, settings
from services.payment import repository as repo
from services.payment.application.base import (
    MAX_FIELDS,
    RETRIES,
    Base,
    local_date,
    log,
    parse_moment,
)
from services.payment.domain import payments, signing
from services.payment.domain.payments import SUCCEEDED


class NotificationCases(Base):
    """The platform's notifications and queries."""

    # -- the platform's notification ------------------------------------------------------

    def notify(self, fields: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Apply the platform's signed notification once; Unauthorized (nothing changes) when its
        checksum is wrong, InvalidInput when its amount is not the payment's."""
        if (not isinstance(fields, dict) or len(fields) > MAX_FIELDS
                or not all(isinstance(k, str) and isinstance(v, str | int) and len(str(v)) <= 512
                           for k, v in fields.items())):
            raise Unauthorized("invalid_signature", "The notification is not signed by the payment platform.")
        fields = {k: str(v) for k, v in fields.items()}
        if not signing.verify(fields, settings.merchant_secrets()):
            raise Unauthorized("invalid_signature", "The notification is not signed by the payment platform.")
        note = payments.read_notification(fields, utcnow())
        for _attempt in range(RETRIES):
            try:
                result, refund = self._apply(note, event_context(context or {}))
            except ConcurrencyError:
                continue
            if refund:
                self.process_refund(refund)
            return result
        raise Conflict("concurrent_update", "The payment changed meanwhile; send the notification again.")

    def _apply(self, note: payments.Notification, context: EventContext) -> tuple[dict[str, Any], str | None]:
        now = utcnow()
        with self.db.transaction(dict_rows=False) as cur:
            row = repo.one(cur, "SELECT id::text, dossier_code FROM payments WHERE reference = %s FOR UPDATE",
                           (note.reference[:64],))
            if row is None:
                raise NotFound("payment_not_found", "No payment has this reference.")
            stream = f"payment-{row['id']}"
            state = payments.replay(self.log.read_stream(stream, cursor=cur))
            charges_open, receipt, charges = True, None, []
            if note.success and state.status not in (SUCCEEDED, payments.REFUNDED) and note.amount == state.amount:
                charges = repo.lock_charges(cur, state.charge_ids)
                charges_open = len(charges) == len(state.charge_ids) and all(c["status"] == "open" for c in charges)
                if charges_open:  # its number is drawn last, just before the append (see below)
                    receipt = {"receipt_no": "", "document_id": str(uuid.uuid4())}
            decided = payments.decide_notification(state, note, charges_open, receipt)
            if not decided:
                return {"result": "already_applied", "payment_id": row["id"], "status": state.status}, None
            for event_type, data in decided:
                if event_type != "ReceiptIssued":
                    repo.project(cur, event_type, data)
            if receipt is not None:
                dossier = repo.one(cur, "SELECT * FROM dossiers WHERE code = %s", (state.dossier_code,)) or {}
                # The gapless receipt counter serialises every success from here to the commit,
                # as the log's append does anyway: draw it as late as possible.
                year = local_date(note.paid_at).year
                number = payments.receipt_number(year, repo.next_receipt_sequence(cur, year))
                issued = next(d for t, d in decided if t == "ReceiptIssued")
                issued["receipt_no"] = receipt["receipt_no"] = number
                repo.project(cur, "ReceiptIssued", issued, {"receipt": {
                    **receipt, "payment_id": row["id"], "dossier_code": state.dossier_code,
                    "payer_name": dossier.get("payer_name"), "agency_code": dossier.get("agency_code"),
                    "agency_name": dossier.get("agency_name"), "amount": state.amount,
                    "fees": [f for c in charges for f in c["fees"]], "transaction_no": note.transaction_no,
                    "reference": note.reference, "paid_at": note.paid_at.isoformat()}})
            self._append(cur, stream, state.version, decided, context, now)
        kinds = [t for t, _ in decided]
        log.info("payment notification applied", extra={"dossier_code": state.dossier_code, "events": kinds})
        status = "succeeded" if "PaymentSucceeded" in kinds else "failed"
        return ({"result": "applied", "payment_id": row["id"], "status": status},
                row["id"] if "RefundRequested" in kinds else None)

    def check_pending(self, now: Any = None) -> list[str]:
        """Ask the platform about payments pending longer than the time-out; apply its answer.
        (``now``: the moment to judge by, an aware datetime or ISO text; by default now.)"""
        now = utcnow() if now in (None, "") else parse_moment(now)
        cutoff = now - dt.timedelta(seconds=settings.query_after_s())
        with self.db.transaction(dict_rows=False) as cur:
            stale = repo.rows(cur, "SELECT reference FROM payments WHERE status = 'pending' AND created_at < %s "
                                   "ORDER BY created_at LIMIT 100", (cutoff,))
        settled = []
        for row in stale:
            try:
                with self.db.transaction() as cur:
                    answer = platform.platform().query(cur, row["reference"])
            except Unavailable:
                return settled
            if answer and answer["status"] != "pending":
                self.notify(answer["fields"], {"request_id": f"query-{row['reference']}"})
                settled.append(row["reference"])
        return settled

