"""What the dossier does when the payment service reports: a payment succeeded (the waiting
dossier moves on, its clock runs again), a charge expired unpaid (``payment_expired``), a
receipt was issued (it becomes one of the dossier's documents).

The dossier never imports the payment service: it consumes its published events and, for a
receipt's bytes, asks it over RPC. Each effect is idempotent by the dossier's own state (a
request already paid, a receipt already attached), so a redelivered event changes nothing.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from portal_common.errors import Conflict, NotFound
from portal_common.eventstore import ConcurrencyError
from portal_common.eventstore.events import SYSTEM, EventContext, utcnow
from services.dossier.application.dossiers import RETRIES, Dossiers, evolved
from services.dossier.domain import lifecycle
from services.dossier.domain.access import SYSTEM_CALLER
from services.dossier.domain.codes import looks_like_code, stream_id
from services.dossier.domain.documents import Upload

NOTHING_TO_DO = ("nothing_to_apply", "transition_not_allowed")


def _context(envelope: dict[str, Any]) -> EventContext:
    return EventContext(actor=SYSTEM, correlation_id=envelope.get("correlation_id"),
                        causation_id=envelope.get("event_id"))


def _run(app: Dossiers, envelope: dict[str, Any], command: str, args: dict[str, Any]) -> bool:
    """Run a system command for a payment event; False when it has nothing (more) to do."""
    code = str(envelope["data"].get("dossier_code") or "")
    if not looks_like_code(code):
        return False
    try:
        app.execute(code, command, args, SYSTEM_CALLER, _context(envelope))
    except NotFound:
        return False
    except Conflict as exc:
        if exc.code in NOTHING_TO_DO:
            return False
        raise
    return True


def on_payment_succeeded(app: Dossiers, envelope: dict[str, Any]) -> bool:
    data = envelope["data"]
    if data.get("late"):
        return False  # its charges were expired or paid: the payment service refunds it
    return _run(app, envelope, "payment_received", {
        "request_ids": [str(c) for c in data["charge_ids"]], "payment_id": data["payment_id"],
        "amount": data["amount"]})


def on_payment_expired(app: Dossiers, envelope: dict[str, Any]) -> bool:
    data = envelope["data"]
    return _run(app, envelope, "payment_expired", {"request_ids": [str(data["charge_id"])],
                                                   "due_date": data.get("due_date")})


def on_receipt_issued(app: Dossiers, payment: Any, envelope: dict[str, Any]) -> bool:
    """Store the receipt's PDF (asked of the payment service) under the id it announced."""
    data = envelope["data"]
    code = str(data.get("dossier_code") or "")
    state = app.load(code) if looks_like_code(code) else lifecycle.DossierState()
    if not state.exists or any(r.get("payment_id") == str(data["payment_id"]) for r in state.receipts):
        return False
    answer = payment.receipt_pdf(str(data["payment_id"]))
    upload = Upload(None, f"bien-lai-{data['receipt_no']}.pdf", "application/pdf",
                    base64.b64decode(answer["content_base64"]))
    return attach_receipt(app, code, str(data["payment_id"]), data["receipt_no"], str(uuid.UUID(
        str(data["document_id"]))), upload, _context(envelope))


def attach_receipt(app: Dossiers, code: str, payment_id: str, receipt_no: str, document_id: str,
                   upload: Upload, context: EventContext) -> bool:
    """One transaction: the receipt's bytes, its document row and DossierReceiptAttached."""
    for _attempt in range(RETRIES):
        try:
            return _attach_once(app, code, payment_id, receipt_no, document_id, upload, context)
        except ConcurrencyError:
            continue  # a concurrent command won: read the dossier again
    raise Conflict("concurrent_update", "The dossier changed meanwhile.")


def _attach_once(app: Dossiers, code: str, payment_id: str, receipt_no: str, document_id: str,
                 upload: Upload, context: EventContext) -> bool:
    now = utcnow()
    with app.repository.transaction() as tx:
        state = lifecycle.replay(app.log.read_stream(stream_id(code), cursor=tx.cursor))
        if any(r.get("payment_id") == payment_id for r in state.receipts):
            return False
        app.repository.store_blob(tx, upload)
        ref = app.repository.add_document(tx, upload, state.owner["account_id"], code, "receipt",
                                          doc_id=document_id)
        new_state, events = evolved(state, lifecycle.decide(state, "attach_receipt", {
            "payment_id": payment_id, "receipt_no": receipt_no, "document": ref}, now), now, SYSTEM.as_dict())
        app.read_models.project(tx, new_state)
        app.log.append(stream_id(code), state.version, events, context=context, cursor=tx.cursor)
    return True
