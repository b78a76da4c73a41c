"""The payment service's use cases: charges from dossier events, payments, the platform's
notifications, expiry, refunds, receipts and reconciliation.

Each command runs in one transaction: lock the rows it decides on (the payment's row, its
charges), replay the stream, let ``domain.payments`` decide, project, append. The row locks
serialise concurrent notifications of one payment and a payment against its charge's expiry,
so a duplicate, late or out-of-order notification is decided on the state the first one left.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from typing import Any

import eventlet

from portal_common.consumer import claim, event_id_of
from portal_common.context import event_context
from portal_common.contracts.payment import SettlementQuery
from portal_common.db import Database
from portal_common.errors import Conflict, InvalidInput, NotFound, Unauthorized, Unavailable
from portal_common.eventstore import ConcurrencyError, EventLog
from portal_common.eventstore.events import SYSTEM, EventContext, NewEvent, utcnow
from services.payment import platform, receipts, settings
from services.payment import repository as repo
from services.payment.domain import payments, reconcile, signing
from services.payment.domain.payments import PENDING, SUCCEEDED

log = logging.getLogger(__name__)
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))
APPLICANTS = ("citizen", "business")
STAFF = ("officer", "agency_system")
RETRIES = 4
MAX_FIELDS = 40


def local_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(LOCAL_TZ).date()


def _system(envelope: dict[str, Any] | None = None) -> EventContext:
    envelope = envelope or {}
    return EventContext(actor=SYSTEM, correlation_id=envelope.get("correlation_id"),
                        causation_id=envelope.get("event_id"))


class Payments:
    """The use cases over the service's database and event log."""

    def __init__(self, db: Database, log_: EventLog):
        self.db = db
        self.log = log_

    def _append(self, cur: Any, stream: str, expected: int | None, decided: list[tuple[str, dict]],
                context: EventContext, now: dt.datetime | None = None) -> None:
        self.log.append(stream, expected, [NewEvent(t, d, occurred_at=now or utcnow()) for t, d in decided],
                        context=context, cursor=cur)

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
            self.request_refund(payment_id, reason, _system(envelope))
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
            self._append(cur, f"charge-{charge['charge_id']}", 0, [("PaymentRequested", charge)], _system(envelope))

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

    # -- expiry, stale payments -----------------------------------------------------------

    def expire_due(self, today: Any = None) -> list[str]:
        """PaymentExpired for every open charge whose due date is before ``today`` (a day, by
        default today's local date); their ids. The one function the expiry timer runs."""
        today = local_date(utcnow()) if today in (None, "") else _day(today)
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
                self._append(cur, f"charge-{charge_id}", None, [("PaymentExpired", data)], _system())
            expired.append(charge_id)
        return expired

    def check_pending(self, now: Any = None) -> list[str]:
        """Ask the platform about payments pending longer than the time-out; apply its answer.
        (``now``: the moment to judge by, an aware datetime or ISO text; by default now.)"""
        now = utcnow() if now in (None, "") else _moment(now)
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
                self._append(cur, stream, state.version, [("RefundSucceeded", data)], _system(), now)
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

    # -- reconciliation --------------------------------------------------------------------

    def reconcile(self, day: Any) -> dict[str, Any]:
        """Compare the platform's settlement file of ``day`` with our payments; every new
        mismatch becomes a SettlementMismatchFound event and a row operators list. Nothing
        else changes."""
        day = _day(day)
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
                         _system())
        for _, m in found:
            log.warning("settlement mismatch", extra={"mismatch": m["kind"], "reference": m["reference"]})
        return {**summary, "items": mismatches, "new": len(found)}

    def mismatches(self, day: Any = None) -> list[dict[str, Any]]:
        with self.db.transaction(dict_rows=False) as cur:
            if day in (None, ""):
                found = repo.rows(cur, "SELECT * FROM settlement_mismatches ORDER BY id DESC LIMIT 500")
            else:
                found = repo.rows(cur, "SELECT * FROM settlement_mismatches WHERE day = %s ORDER BY id", (_day(day),))
        return [{**m, "day": m["day"].isoformat(), "found_at": m["found_at"].isoformat(),
                 "payment_id": str(m["payment_id"]) if m["payment_id"] else None} for m in found]

    def reconcile_yesterday(self, now: dt.datetime | None = None) -> dict[str, Any] | None:
        """The daily job: once the local day has turned (after 01:00), reconcile the day before, once."""
        now = (now or utcnow()).astimezone(LOCAL_TZ)
        if now.hour < 1 or not settings.local_adapters():
            return None
        yesterday = now.date() - dt.timedelta(days=1)
        with self.db.transaction(dict_rows=False) as cur:
            if repo.one(cur, "SELECT day FROM settlement_runs WHERE day = %s", (yesterday,)):
                return None
        return self.reconcile(yesterday)

    # -- the local stand-in platform --------------------------------------------------------

    def platform_complete(self, payment_id: Any, outcome: str) -> dict[str, Any]:
        try:
            payment_id = str(uuid.UUID(str(payment_id)))
        except ValueError:
            raise NotFound("payment_not_found", "The platform has no such payment.") from None
        if outcome not in ("success", "failure"):
            raise InvalidInput("invalid_outcome", "outcome is success or failure.")
        with self.db.transaction() as cur:
            result = platform.platform().complete(cur, payment_id, outcome, utcnow())
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
        day = _day(day)
        with self.db.transaction() as cur:
            lines = platform.platform().settlement(cur, day)
        return {"date": day.isoformat(), "merchant": settings.merchant_code(), "items": lines,
                "total": sum(int(x["amount"]) * (1 if x["kind"] == "payment" else -1) for x in lines)}

    def platform_page(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.db.transaction() as cur:
            return platform.platform().page(cur, {k: str(v) for k, v in (fields or {}).items()})

    def tick(self) -> None:
        """The periodic work: send the stand-in's notifications, render receipts, ask about stale
        payments, finish refunds, run the daily reconciliation. (Charges expire in ``expire_due``, its own timer.)"""
        self.deliver_notifications()
        self.render_receipts()
        self.check_pending()
        self.process_refunds()
        self.reconcile_yesterday()


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return SettlementQuery().load({"date": value})["date"]
    except Exception:
        raise InvalidInput("invalid_date", "date must be YYYY-MM-DD.", [{"field": "date", "message": "not a date"}]) \
            from None


def _moment(value: Any) -> dt.datetime:
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("invalid_time", "Give an ISO 8601 time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
