"""The national payment platform, as the payment service sees it, and its local stand-in.

Outward: the browser pays at ``payment_url`` (our signed request: reference, amount, return
address); the platform answers with a signed asynchronous notification to
``POST /api/v1/payments/notify``, retried until we accept it; a pending payment can be asked
about (``query``); a refund is asked for (``refund``); each day's settled lines come in a
settlement file (``settlement``).

With ``LOCAL_ADAPTERS`` on, ``LocalPlatform`` plays the platform in the payment schema's
``platform_*`` tables: it keeps the transactions it was sent, settles them when told to
(``/api/v1/dev/payment-platform/complete``), queues its signed notification and sends it over
HTTP like the real one (again and again until answered 2xx), and writes its settlement file.
Without local adapters only the pay URL is built; query and refund then need the real
platform's API, which this deployment does not reach (``Unavailable``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from portal_common.errors import NotFound, Unavailable
from services.payment import settings
from services.payment.domain import signing

log = logging.getLogger(__name__)
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))
RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")


def current_secret() -> str:
    found = settings.merchant_secrets()
    if not found:
        raise Unavailable("payment_not_configured", "Online payment is not configured.")
    return found[0]


def payment_url(reference: str, amount: int, now: dt.datetime, order_info: str) -> str:
    """The platform's pay page for this payment, with our signed request."""
    fields = {"vnp_Version": "2.1.0", "vnp_Command": "pay", "vnp_TmnCode": settings.merchant_code(),
              "vnp_Amount": str(amount * 100), "vnp_CurrCode": "VND", "vnp_TxnRef": reference,
              "vnp_OrderInfo": order_info, "vnp_Locale": "vn", "vnp_CreateDate": stamp(now)}
    return f"{settings.platform_url()}?{urlencode(signing.signed(fields, current_secret()))}"


class LocalPlatform:
    """The stand-in platform's state and behaviour, on a cursor of the payment schema."""

    def register(self, cur: Any, reference: str, payment_id: str, amount: int) -> None:
        cur.execute("INSERT INTO platform_transactions (reference, payment_id, amount, status) "
                    "VALUES (%s, %s, %s, 'pending') ON CONFLICT DO NOTHING", (reference, payment_id, amount))

    def page(self, cur: Any, fields: dict[str, str]) -> dict[str, Any]:
        """What the pay page shows, for a request whose checksum is right."""
        if not signing.verify(fields, settings.merchant_secrets()):
            raise NotFound("payment_not_found", "No such payment request.")
        cur.execute("SELECT payment_id::text, amount, status FROM platform_transactions WHERE reference = %s",
                    (str(fields.get("vnp_TxnRef")),))
        row = cur.fetchone()
        if row is None:
            raise NotFound("payment_not_found", "No such payment request.")
        return {"payment_id": row["payment_id"], "amount": row["amount"], "status": row["status"],
                "reference": fields.get("vnp_TxnRef"), "order_info": fields.get("vnp_OrderInfo")}

    def complete(self, cur: Any, payment_id: str, outcome: str, now: dt.datetime) -> dict[str, Any]:
        """Settle a transaction (the first outcome stands) and queue its signed notification;
        completing it again queues the notification again, as a platform's retry would."""
        cur.execute("SELECT reference, amount, status, transaction_no, completed_at FROM platform_transactions "
                    "WHERE payment_id = %s FOR UPDATE", (payment_id,))
        row = cur.fetchone()
        if row is None:
            raise NotFound("payment_not_found", "The platform has no such payment.")
        if row["status"] == "pending":
            row = dict(row, status=outcome, completed_at=now,
                       transaction_no=f"{now.astimezone(LOCAL_TZ):%y%m%d}{secrets.randbelow(10**8):08d}")
            cur.execute("UPDATE platform_transactions SET status = %s, transaction_no = %s, completed_at = %s "
                        "WHERE reference = %s", (outcome, row["transaction_no"], now, row["reference"]))
            if outcome == "success":
                cur.execute("INSERT INTO platform_settlements (day, reference, transaction_no, kind, amount, at) "
                            "VALUES (%s, %s, %s, 'payment', %s, %s)",
                            (now.astimezone(LOCAL_TZ).date(), row["reference"], row["transaction_no"],
                             row["amount"], now))
        body = self.notification(row)
        cur.execute("INSERT INTO platform_notifications (reference, body) VALUES (%s, %s) RETURNING id",
                    (row["reference"], json.dumps(body)))
        return {"payment_id": payment_id, "status": row["status"], "notification_id": cur.fetchone()["id"]}

    def notification(self, row: dict[str, Any]) -> dict[str, str]:
        code = "00" if row["status"] == "success" else "24"
        fields = {"vnp_TmnCode": settings.merchant_code(), "vnp_TxnRef": row["reference"],
                  "vnp_Amount": str(int(row["amount"]) * 100), "vnp_ResponseCode": code,
                  "vnp_TransactionStatus": code, "vnp_TransactionNo": row["transaction_no"] or "",
                  "vnp_PayDate": stamp(row["completed_at"]), "vnp_BankCode": "NCB"}
        return signing.signed(fields, current_secret())

    def due_notifications(self, cur: Any, limit: int = 50) -> list[dict[str, Any]]:
        cur.execute("SELECT id, body, attempts FROM platform_notifications WHERE delivered_at IS NULL "
                    "AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
        return cur.fetchall()

    def mark(self, cur: Any, notification_id: int, attempts: int, error: str | None) -> None:
        if error is None:
            cur.execute("UPDATE platform_notifications SET delivered_at = now(), attempts = %s, last_error = NULL "
                        "WHERE id = %s", (attempts, notification_id))
        else:
            delay = RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]
            cur.execute("UPDATE platform_notifications SET attempts = %s, last_error = %s, "
                        "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                        (attempts, error[:500], delay, notification_id))

    @staticmethod
    def send(body: dict[str, str]) -> str | None:
        """POST one notification to the merchant; None when it was accepted (2xx)."""
        request = urllib.request.Request(settings.notify_url(), data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - configured merchant URL
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return type(exc).__name__

    def query(self, cur: Any, reference: str) -> dict[str, Any] | None:
        """The platform's answer about one transaction (as its query API would give it)."""
        cur.execute("SELECT reference, amount, status, transaction_no, completed_at FROM platform_transactions "
                    "WHERE reference = %s", (reference,))
        row = cur.fetchone()
        if row is None:
            return None
        if row["status"] == "pending":
            return {"status": "pending"}
        return {"status": row["status"], "fields": self.notification(row)}

    def refund(self, cur: Any, reference: str, amount: int, now: dt.datetime) -> str:
        """Pay ``amount`` back (once per reference); the refund's transaction number."""
        cur.execute("SELECT status, refunded, transaction_no FROM platform_transactions WHERE reference = %s "
                    "FOR UPDATE", (reference,))
        row = cur.fetchone()
        if row is None or row["status"] != "success":
            raise NotFound("payment_not_found", "The platform has no settled payment with this reference.")
        number = f"R{row['transaction_no']}"
        if row["refunded"] < amount:
            cur.execute("UPDATE platform_transactions SET refunded = %s WHERE reference = %s", (amount, reference))
            cur.execute("INSERT INTO platform_settlements (day, reference, transaction_no, kind, amount, at) "
                        "VALUES (%s, %s, %s, 'refund', %s, %s)",
                        (now.astimezone(LOCAL_TZ).date(), reference, number, amount, now))
        return number

    def settlement(self, cur: Any, day: dt.date) -> list[dict[str, Any]]:
        cur.execute("SELECT reference, transaction_no, kind, amount, at FROM platform_settlements WHERE day = %s "
                    "ORDER BY id", (day,))
        return [{**r, "at": r["at"].isoformat()} for r in cur.fetchall()]


def platform() -> LocalPlatform:
    """The platform this deployment talks to (the stand-in when local adapters are on)."""
    if not settings.local_adapters():
        raise Unavailable("platform_unavailable", "The payment platform's API is not reachable from here.")
    return LocalPlatform()
