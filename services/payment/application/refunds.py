"""After a payment: refunds tracked to their end, and the receipts' PDFs."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from portal_common.errors import NotFound, Unavailable
from portal_common.eventstore.events import EventContext, utcnow
from services.payment import platform, receipts
from services.payment import repository as repo
from services.payment.application.base import (
    Base,
    system_context,
)
from services.payment.domain import payments


class AfterPaymentCases(Base):
    """Refunds and receipts."""

    # -- refunds ---------------------------------------------------------------------------

    def request_refund(self, payment_id: str, reason: str, context: EventContext) -> dict[str, Any]:
        """RefundRequested (once) for a succeeded payment, then ask the platform to pay it back."""
        try:
            payment_id = str(uuid.UUID(str(payment_id)))
        except ValueError:
            raise NotFound("payment_not_found", "No such payment.") from None
        with self.db.transaction(dict_rows=False) as cur:
            row = repo.one(cur, "SELECT id FROM payments WHERE id = %s FOR UPDATE", (payment_id,))
            if row is None:
                raise NotFound("payment_not_found", "No such payment.")
            stream = f"payment-{payment_id}"
            state = payments.replay(self.log.read_stream(stream, cursor=cur))
            decided = payments.decide_refund(state, reason)
            for event_type, data in decided:
                repo.project(cur, event_type, data)
            if decided:
                self._append(cur, stream, state.version, decided, context)
        return self.process_refund(payment_id)

    def process_refund(self, payment_id: str) -> dict[str, Any]:
        """Have the platform pay a requested refund back; RefundSucceeded once it has."""
        now = utcnow()
        try:
            with self.db.transaction(dict_rows=False) as cur:
                row = repo.one(cur, "SELECT reference, amount, refund_status FROM payments WHERE id = %s FOR UPDATE",
                               (payment_id,))
                if row is None or row["refund_status"] != "requested":
                    return {"payment_id": payment_id, "refund_status": row and row["refund_status"]}
                number = platform.platform().refund(repo.dict_cursor(cur), row["reference"], int(row["amount"]), now)
                stream = f"payment-{payment_id}"
                state = payments.replay(self.log.read_stream(stream, cursor=cur))
                data = {"payment_id": payment_id, "dossier_code": state.dossier_code, "amount": state.amount,
                        "transaction_no": number, "refunded_at": now.isoformat()}
                repo.project(cur, "RefundSucceeded", data)
                self._append(cur, stream, state.version, [("RefundSucceeded", data)], system_context(), now)
        except Unavailable:
            return {"payment_id": payment_id, "refund_status": "requested"}
        return {"payment_id": payment_id, "refund_status": "succeeded"}

    def process_refunds(self) -> None:
        with self.db.transaction(dict_rows=False) as cur:
            waiting = [r["id"] for r in repo.rows(cur, "SELECT id::text FROM payments WHERE refund_status = "
                                                       "'requested' ORDER BY updated_at LIMIT 50")]
        for payment_id in waiting:
            self.process_refund(payment_id)

    # -- receipts --------------------------------------------------------------------------

    def receipt_pdf(self, payment_id: str) -> dict[str, Any]:
        """The receipt's PDF. Rendered in the background after the payment (``render_receipts``);
        one asked for before that is rendered now if the renderer is free, and otherwise
        answered ``Unavailable`` (the caller asks again later) rather than holding a worker
        that the platform's notifications need."""
        try:
            payment_id = str(uuid.UUID(str(payment_id)))
        except ValueError:
            raise NotFound("receipt_not_found", "No such receipt.") from None
        with self.db.transaction(dict_rows=False) as cur:
            row = repo.one(cur, "SELECT receipt_no, document_id::text, details, pdf FROM receipts "
                                "WHERE payment_id = %s", (payment_id,))
        if row is None:
            raise NotFound("receipt_not_found", "No such receipt.")
        pdf = bytes(row["pdf"]) if row["pdf"] is not None else None
        if pdf is None:
            if receipts.renderer().busy:
                raise Unavailable("receipt_not_ready", "The receipt is being rendered; ask again shortly.")
            pdf = self._render(payment_id, row["details"])
        return {"receipt_no": row["receipt_no"], "document_id": row["document_id"],
                "content_base64": base64.b64encode(pdf).decode()}

    def _render(self, payment_id: str, details: dict[str, Any]) -> bytes:
        pdf = receipts.renderer().render(details)
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("UPDATE receipts SET pdf = %s WHERE payment_id = %s AND pdf IS NULL", (pdf, payment_id))
        return pdf

    def render_receipts(self, limit: int = 20) -> int:
        """Render the receipts issued and not rendered yet, oldest first (the periodic work)."""
        with self.db.transaction(dict_rows=False) as cur:
            waiting = repo.rows(cur, "SELECT payment_id::text, details FROM receipts WHERE pdf IS NULL "
                                     "ORDER BY issued_at LIMIT %s", (limit,))
        for row in waiting:
            self._render(row["payment_id"], row["details"])
        return len(waiting)

