"""Charges and starting payments: dossier events open charges (and trigger refunds), the
applicant sees what is due and starts paying, unpaid charges expire at their due date.
"""

from __future__ import annotations

import uuid
from typing import Any

from portal_common.consumer import claim, event_id_of
from portal_common.context import event_context
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore.events import utcnow
from services.payment import platform, settings
from services.payment import repository as repo
from services.payment.application.base import (
    APPLICANTS,
    STAFF,
    Base,
    local_date,
    log,
    parse_day,
    system_context,
)
from services.payment.domain.payments import PENDING


class ChargeCases(Base):
    """Charges from dossier events, the applicant's payments, expiry."""

    # -- dossier events ------------------------------------------------------------------

    def on_dossier_event(self, envelope: dict[str, Any]) -> bool:
        """DossierPaymentRequested opens a charge; ProcessingStarted, Refused and Withdrawn are
        remembered (the last two refund what was paid, as the procedure's rules say). Once."""
        event_id = event_id_of(envelope)
        kind, data = envelope.get("event_type"), envelope.get("data") or {}
        refund: list[str] = []
        with self.db.transaction(dict_rows=False) as cur:
            if not claim(cur, "payment.dossier", event_id):
                return False
            code = str(data.get("code") or "")
            if kind == "DossierPaymentRequested":
                self._open_charge(cur, envelope, data)
            elif kind == "DossierProcessingStarted":
                repo.processing_started(cur, code)
            elif kind in ("DossierRefused", "DossierWithdrawn"):
                known = repo.one(cur, "SELECT processing_started FROM dossiers WHERE code = %s", (code,))
                if known is not None and (kind == "DossierRefused" or not known["processing_started"]):
                    refund = [r["id"] for r in repo.rows(
                        cur, "SELECT id::text FROM payments WHERE dossier_code = %s AND status = 'succeeded' "
                             "AND refund_status IS NULL", (code,))]
        reason = "hồ sơ bị từ chối tiếp nhận" if kind == "DossierRefused" else "hồ sơ được rút trước khi xử lý"
        for payment_id in refund:
            self.request_refund(payment_id, reason, system_context(envelope))
        return True

    def _open_charge(self, cur: Any, envelope: dict[str, Any], data: dict[str, Any]) -> None:
        owner = (data.get("owner") or {}).get("account_id")
        repo.remember_dossier(cur, data["code"], owner, data.get("agency_code"), data.get("agency_name"),
                              data.get("payer_name"))
        charge = {"charge_id": str(data["request_id"]), "dossier_code": data["code"],
                  "agency_code": data["agency_code"], "agency_name": data.get("agency_name"),
                  "owner_account_id": owner, "payer_name": data.get("payer_name"), "amount": data["amount"],
                  "fees": data["fees"], "reason": data.get("reason"), "due_date": data.get("due_date"),
                  "blocking": data["blocking"]}
        if repo.insert_charge(cur, charge):
            self._append(cur, f"charge-{charge['charge_id']}", 0, [("PaymentRequested", charge)],
                         system_context(envelope))

    # -- the applicant's payments ---------------------------------------------------------

    def _dossier_for(self, cur: Any, context: dict[str, Any], code: str) -> dict[str, Any]:
        actor = (context or {}).get("actor") or {}
        found = repo.one(cur, "SELECT * FROM dossiers WHERE code = %s", (str(code)[:64],))
        visible = found is not None and (
            (actor.get("kind") in APPLICANTS and found["owner_account_id"] == str(actor.get("id")))
            or (actor.get("kind") in STAFF and found["agency_code"] == actor.get("agency_code")))
        if not visible:
            raise NotFound("dossier_not_found", "No dossier with this code.")
        return found

    def dossier_payments(self, context: dict[str, Any], code: str) -> dict[str, Any]:
        """What is due and every payment of the dossier (NotFound: not one the caller may see)."""
        with self.db.transaction(dict_rows=False) as cur:
            self._dossier_for(cur, context, code)
            charges = repo.rows(cur, "SELECT id::text, amount, fees, reason, due_date, blocking, status FROM charges "
                                     "WHERE dossier_code = %s ORDER BY created_at", (code,))
            items = repo.rows(cur, "SELECT * FROM payments WHERE dossier_code = %s ORDER BY created_at", (code,))
        expired = {c["id"] for c in charges if c["status"] == "expired"}
        return {"due": [_due_view(c) for c in charges if c["status"] == "open"],
                "charges": [_due_view(c) for c in charges],
                "items": [payment_view(p, expired) for p in items]}

    def create_payment(self, context: dict[str, Any], code: str, fee_ids: list[str] | None,
                       idempotency_key: str | None) -> dict[str, Any]:
        """Start paying the selected open charges (all by default); a retry with the same key,
        or a second request for the very charges of a pending payment, answers that payment."""
        actor = (context or {}).get("actor") or {}
        if actor.get("kind") not in APPLICANTS:
            raise NotFound("dossier_not_found", "No dossier with this code.")
        if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                                and 0 < len(idempotency_key) <= 200 and idempotency_key.isprintable()):
            raise InvalidInput("invalid_idempotency_key", "Idempotency-Key must be 1-200 printable characters.")
        account = str(actor.get("id"))
        now = utcnow()
        with self.db.transaction(dict_rows=False) as cur:
            dossier = self._dossier_for(cur, context, code)
            if idempotency_key:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pay:{account}:{idempotency_key}",))
                earlier = repo.one(cur, "SELECT * FROM payments WHERE owner_account_id = %s AND idempotency_key = %s",
                                   (account, idempotency_key))
                if earlier is not None:
                    if earlier["dossier_code"] != code:
                        raise Conflict("idempotency_key_reused", "This Idempotency-Key was used for another payment.")
                    return dict(payment_view(earlier, set()), created=False)
            charges = repo.rows(cur, "SELECT id::text, amount, fees FROM charges WHERE dossier_code = %s "
                                     "AND status = 'open' ORDER BY created_at FOR UPDATE", (code,))
            chosen = _select(charges, fee_ids)
            ids = sorted(c["id"] for c in chosen)
            for pending in repo.rows(cur, "SELECT * FROM payments WHERE dossier_code = %s AND status = 'pending'",
                                     (code,)):
                if sorted(str(c) for c in pending["charge_ids"]) == ids:
                    return dict(payment_view(pending, set()), created=False)
            payment_id = str(uuid.uuid4())
            data = {"payment_id": payment_id, "dossier_code": code, "charge_ids": ids,
                    "amount": sum(int(c["amount"]) for c in chosen), "reference": uuid.UUID(payment_id).hex,
                    "owner_account_id": account, "idempotency_key": idempotency_key}
            platform.current_secret()  # no secret, no payment: refused before anything is written
            repo.project(cur, "PaymentInitiated", data, {"now": now})
            if settings.local_adapters():
                platform.LocalPlatform().register(repo.dict_cursor(cur), data["reference"], payment_id, data["amount"])
            self._append(cur, f"payment-{payment_id}", 0, [("PaymentInitiated", data)], event_context(context), now)
            row = repo.one(cur, "SELECT * FROM payments WHERE id = %s", (payment_id,))
        log.info("payment initiated", extra={"dossier_code": dossier["code"], "payment_id": payment_id})
        return dict(payment_view(row, set()), created=True)

    # -- expiry, stale payments -----------------------------------------------------------

    def expire_due(self, today: Any = None) -> list[str]:
        """PaymentExpired for every open charge whose due date is before ``today`` (a day, by
        default today's local date); their ids. The one function the expiry timer runs."""
        today = local_date(utcnow()) if today in (None, "") else parse_day(today)
        with self.db.transaction(dict_rows=False) as cur:
            due = [r["id"] for r in repo.rows(cur, "SELECT id::text FROM charges WHERE status = 'open' "
                                                   "AND due_date < %s ORDER BY due_date LIMIT 500", (today,))]
        expired = []
        for charge_id in due:
            with self.db.transaction(dict_rows=False) as cur:
                [row] = repo.rows(cur, "SELECT id::text, dossier_code, due_date, status FROM charges WHERE id = %s "
                                       "FOR UPDATE", (charge_id,))
                if row["status"] != "open":
                    continue  # paid or expired meanwhile
                data = {"charge_id": charge_id, "dossier_code": row["dossier_code"],
                        "due_date": row["due_date"].isoformat()}
                repo.project(cur, "PaymentExpired", data)
                self._append(cur, f"charge-{charge_id}", None, [("PaymentExpired", data)], system_context())
            expired.append(charge_id)
        return expired


def _select(charges: list[dict[str, Any]], fee_ids: list[str] | None) -> list[dict[str, Any]]:
    """The open charges chosen by id (a charge's or one of its fee lines'); all when none named."""
    if not charges:
        raise Conflict("nothing_due", "Nothing is due on this dossier.")
    if not fee_ids:
        return charges
    chosen, known = [], set()
    for charge in charges:
        ids = {charge["id"], *(f"{f['id']}" for f in charge["fees"])}
        known |= ids
        if ids & set(fee_ids):
            chosen.append(charge)
    unknown = [f for f in fee_ids if f not in known]
    if unknown:
        raise InvalidInput("unknown_fee", "Not a fee due on this dossier.",
                           [{"field": "fee_ids", "message": f"not due: {', '.join(unknown[:5])}"}])
    return chosen


def _due_view(charge: dict[str, Any]) -> dict[str, Any]:
    return {"id": charge["id"], "amount": int(charge["amount"]), "reason": charge["reason"],
            "due_date": charge["due_date"].isoformat() if charge["due_date"] else None,
            "blocking": charge["blocking"], "status": charge["status"], "fees": charge["fees"]}


def payment_view(row: dict[str, Any], expired_charges: set[str]) -> dict[str, Any]:
    status = row["status"]
    if status == PENDING and row["charge_ids"] and all(str(c) in expired_charges for c in row["charge_ids"]):
        status = "expired"
    view = {"id": str(row["id"]), "amount": int(row["amount"]), "status": status,
            "charge_ids": [str(c) for c in row["charge_ids"]], "reference": row["reference"],
            "created_at": row["created_at"].isoformat(),
            "paid_at": row["paid_at"].isoformat() if row["paid_at"] else None,
            "receipt_no": row["receipt_no"],
            "receipt_document_id": str(row["receipt_document_id"]) if row["receipt_document_id"] else None,
            "refund_status": row["refund_status"]}
    if status == PENDING:
        view["payment_url"] = platform.payment_url(row["reference"], int(row["amount"]), row["created_at"],
                                                   f"Thanh toan ho so {row['dossier_code']}")
    return view
