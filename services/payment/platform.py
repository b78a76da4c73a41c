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

``HttpPlatform`` asks the platform's merchant API over HTTP (``PAYMENT_PLATFORM_API_URL``): a
JSON ``POST`` with ``vnp_Command`` ``querydr`` or ``refund``, signed HMAC-SHA512 over the
documented fields joined by ``|`` (``domain.signing``), and each answer's checksum checked
the same way; the day's settlement file is fetched from ``PAYMENT_SETTLEMENT_URL`` and its
checksum checked too. An answer that is late, unreachable, not 2xx, or not signed right is
``Unavailable`` and changes nothing: the callers try again on a later tick. The local
stand-in serves the same API (``LocalPlatform.api``, at the gateway's
``/api/v1/dev/payment-platform/merchant_webapi/api/transaction``).

``platform()`` picks: ``HttpPlatform`` when ``PAYMENT_PLATFORM_API_URL`` is set, else the
stand-in's tables directly with local adapters, else ``Unavailable`` (only the pay URL and the
notification's check work then).
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import logging
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from portal_common.errors import NotFound, Unavailable
from services.payment import settings
from services.payment.domain import signing

log = logging.getLogger(__name__)
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))
RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)
API_VERSION = "2.1.0"
MAX_ANSWER_BYTES = 20 * 1024 * 1024
#: the platform's transaction status (``vnp_TransactionStatus``) of each stand-in status
TRANSACTION_STATUS = {"pending": "01", "success": "00", "failure": "02"}


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

    def api(self, cur: Any, body: Any, now: dt.datetime) -> dict[str, Any]:
        """The merchant API (``querydr``, ``refund``) as the platform serves it: the request's
        checksum checked, the answer signed over its documented fields."""
        fields = ({k: str(v) for k, v in body.items() if isinstance(k, str) and isinstance(v, str | int)}
                  if isinstance(body, dict) and len(body) <= 40 else {})
        command = fields.get("vnp_Command", "")
        request_order, response_order = signing.API_ORDERS.get(command, signing.API_ORDERS["querydr"])
        base = {"vnp_ResponseId": secrets.token_hex(16), "vnp_Command": command,
                "vnp_TmnCode": settings.merchant_code(), "vnp_TxnRef": fields.get("vnp_TxnRef", "")[:64]}

        def answer(code: str, message: str, **more: str) -> dict[str, Any]:
            return signing.pipe_signed({**base, "vnp_ResponseCode": code, "vnp_Message": message, **more},
                                       response_order, current_secret())

        if command not in signing.API_ORDERS:
            return answer("99", "Unknown command")
        if not signing.pipe_verify(fields, request_order, settings.merchant_secrets()):
            return answer("97", "Invalid checksum")
        if fields.get("vnp_TmnCode") != settings.merchant_code():
            return answer("02", "Merchant is not valid")
        lock = " FOR UPDATE" if command == "refund" else ""
        cur.execute("SELECT reference, amount, status, transaction_no, completed_at FROM platform_transactions "
                    f"WHERE reference = %s{lock}", (base["vnp_TxnRef"],))
        row = cur.fetchone()
        if row is None:
            return answer("91", "Transaction not found")
        paid = {"vnp_Amount": str(int(row["amount"]) * 100), "vnp_BankCode": "NCB",
                "vnp_PayDate": stamp(row["completed_at"]) if row["completed_at"] else "",
                "vnp_OrderInfo": fields.get("vnp_OrderInfo", "")}
        if command == "querydr":
            return answer("00", "Success", **paid, vnp_TransactionNo=row["transaction_no"] or "",
                          vnp_TransactionType="01", vnp_TransactionStatus=TRANSACTION_STATUS[row["status"]])
        if row["status"] != "success":
            return answer("95", "The transaction was not paid: nothing to refund")
        raw = fields.get("vnp_Amount", "")
        if not (raw.isdigit() and len(raw) <= 16 and int(raw) % 100 == 0 and 0 < int(raw) <= int(row["amount"]) * 100):
            return answer("03", "Invalid amount")
        number = self.refund(cur, row["reference"], int(raw) // 100, now)
        return answer("00", "Success", **dict(paid, vnp_Amount=raw), vnp_TransactionNo=number,
                      vnp_TransactionType=fields.get("vnp_TransactionType", "02"), vnp_TransactionStatus="00")

    def settlement(self, cur: Any, day: dt.date) -> list[dict[str, Any]]:
        cur.execute("SELECT reference, transaction_no, kind, amount, at FROM platform_settlements WHERE day = %s "
                    "ORDER BY id", (day,))
        return [{**r, "at": r["at"].isoformat()} for r in cur.fetchall()]




class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer we do not follow: the platform's URLs are configured


_OPENER = urllib.request.build_opener(_NoRedirect)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpPlatform:
    """The platform's merchant API and settlement file over HTTP (same face as ``LocalPlatform``'s
    ``query``, ``refund`` and ``settlement``). Requests and answers are checked by their
    checksums; the merchant secret and the checksums are never logged."""

    def __init__(self, api_url: str, settlement_url: str | None = None, timeout: float = 10.0):
        self.api_url = api_url
        self.settlement_url = settlement_url
        self.timeout = timeout

    # -- HTTP ---------------------------------------------------------------------------------

    def _fetch(self, url: str, data: bytes | None = None) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
            log.error("payment platform URL refused: use https", extra={"host": parts.hostname})
            raise Unavailable("platform_not_https", "The payment platform is reached only over HTTPS.")
        request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",  # noqa: S310
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with _OPENER.open(request, timeout=self.timeout) as resp:
                body = resp.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            log.warning("payment platform answered an error", extra={"host": parts.hostname, "status": exc.code})
            raise Unavailable("platform_unavailable", f"The payment platform answered HTTP {exc.code}.") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            log.warning("payment platform not reachable", extra={"host": parts.hostname, "error": type(exc).__name__})
            raise Unavailable("platform_unavailable", "The payment platform did not answer.") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise Unavailable("platform_bad_answer", "The payment platform's answer is too large.")
        return body

    def _call(self, request: dict[str, str]) -> dict[str, str]:
        """POST one signed request to the merchant API; its answer once its checksum is right."""
        command = request["vnp_Command"]
        request_order, response_order = signing.API_ORDERS[command]
        raw = self._fetch(self.api_url, json.dumps(signing.pipe_signed(request, request_order,
                                                                       current_secret())).encode())
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise Unavailable("platform_bad_answer", "The payment platform's answer is not a JSON object.")
        answer = {k: "" if v is None else str(v) for k, v in answer.items()}
        if not signing.pipe_verify(answer, response_order, settings.merchant_secrets()):
            log.warning("payment platform answer refused: wrong checksum",
                        extra={"command": command, "reference": request["vnp_TxnRef"]})
            raise Unavailable("platform_bad_checksum", "The payment platform's answer is not signed by it.")
        if (answer.get("vnp_Command") != command or answer.get("vnp_TxnRef") != request["vnp_TxnRef"]
                or answer.get("vnp_TmnCode") != request["vnp_TmnCode"]):
            raise Unavailable("platform_bad_answer", "The payment platform answered another request.")
        log.info("payment platform answered", extra={"command": command, "reference": request["vnp_TxnRef"],
                                                     "response_code": answer.get("vnp_ResponseCode")})
        return answer

    @staticmethod
    def _request(command: str, reference: str, created_at: dt.datetime | None, now: dt.datetime,
                 order_info: str) -> dict[str, str]:
        return {"vnp_RequestId": secrets.token_hex(16), "vnp_Version": API_VERSION, "vnp_Command": command,
                "vnp_TmnCode": settings.merchant_code(), "vnp_TxnRef": reference,
                "vnp_TransactionDate": stamp(created_at or now), "vnp_CreateDate": stamp(now),
                "vnp_IpAddr": settings.server_ip(), "vnp_OrderInfo": order_info}

    @staticmethod
    def _payment(cur: Any, reference: str) -> dict[str, Any]:
        """What the request needs of our payment: when it was created, its amount and number."""
        cur.execute("SELECT created_at, amount, transaction_no FROM payments WHERE reference = %s", (reference,))
        return cur.fetchone() or {"created_at": None, "amount": None, "transaction_no": None}

    # -- the platform's face --------------------------------------------------------------------

    def query(self, cur: Any, reference: str) -> dict[str, Any] | None:
        """``querydr``: None when the platform does not know the reference, ``pending``, or the
        outcome with notification fields (signed here, the answer's checksum being right)."""
        mine = self._payment(cur, reference)
        answer = self._call(self._request("querydr", reference, mine["created_at"], dt.datetime.now(dt.UTC),
                                          f"Truy van giao dich {reference}"))
        code = answer.get("vnp_ResponseCode")
        if code == "91":
            return None
        if code != "00":
            raise Unavailable("platform_refused", f"The payment platform refused the query ({code}).")
        status = answer.get("vnp_TransactionStatus", "")
        if status == TRANSACTION_STATUS["pending"]:
            return {"status": "pending"}
        fields = {"vnp_TmnCode": answer["vnp_TmnCode"], "vnp_TxnRef": reference,
                  "vnp_ResponseCode": status, "vnp_TransactionStatus": status,
                  **{k: answer.get(k, "") for k in ("vnp_Amount", "vnp_TransactionNo", "vnp_PayDate", "vnp_BankCode")}}
        outcome = "success" if status == "00" else "failure"
        return {"status": outcome, "fields": signing.signed(fields, current_secret())}

    def refund(self, cur: Any, reference: str, amount: int, now: dt.datetime) -> str:
        """``refund``: pay ``amount`` back; the refund's transaction number once the platform
        accepted it (NotFound when it has no settled payment with this reference)."""
        mine = self._payment(cur, reference)
        request = self._request("refund", reference, mine["created_at"], now, f"Hoan tien giao dich {reference}")
        full = mine["amount"] is None or int(mine["amount"]) == amount
        request.update({"vnp_TransactionType": "02" if full else "03", "vnp_Amount": str(amount * 100),
                        "vnp_TransactionNo": mine["transaction_no"] or "0", "vnp_CreateBy": settings.merchant_code()})
        answer = self._call(request)
        code = answer.get("vnp_ResponseCode")
        if code == "91":
            raise NotFound("payment_not_found", "The platform has no settled payment with this reference.")
        if code != "00" or not answer.get("vnp_TransactionNo"):
            raise Unavailable("platform_refused", f"The payment platform did not refund ({code}).")
        return answer["vnp_TransactionNo"]

    def settlement(self, cur: Any, day: dt.date) -> list[dict[str, Any]]:
        """The day's settlement file, once its checksum is right."""
        if not self.settlement_url:
            raise Unavailable("settlement_not_configured", "PAYMENT_SETTLEMENT_URL is not set.")
        raw = self._fetch(self.settlement_url.replace("{date}", day.isoformat()))
        try:
            found = json.loads(raw)
            lines = [{"reference": str(x["reference"]), "transaction_no": str(x["transaction_no"]),
                      "kind": str(x["kind"]), "amount": int(x["amount"]), "at": str(x["at"])} for x in found["items"]]
            merchant, given, date = str(found["merchant"]), str(found["checksum"]), str(found["date"])
        except (ValueError, TypeError, KeyError):
            raise Unavailable("settlement_bad_file", "The settlement file cannot be read.") from None
        if not signing.settlement_verify(date, merchant, lines, given, settings.merchant_secrets()):
            log.warning("settlement file refused: wrong checksum", extra={"date": day.isoformat()})
            raise Unavailable("settlement_bad_checksum", "The settlement file is not signed by the platform.")
        if date != day.isoformat() or merchant != settings.merchant_code() or any(
                x["kind"] not in ("payment", "refund") for x in lines):
            raise Unavailable("settlement_bad_file", "The settlement file is not this merchant's of this day.")
        return lines


def platform() -> LocalPlatform | HttpPlatform:
    """The platform this deployment talks to: its merchant API over HTTP when
    ``PAYMENT_PLATFORM_API_URL`` is set, else the stand-in's tables when local adapters are on."""
    api_url = settings.platform_api_url()
    if api_url:
        return HttpPlatform(api_url, settings.settlement_url(), settings.platform_timeout_s())
    if not settings.local_adapters():
        raise Unavailable("platform_unavailable", "The payment platform's API is not reachable from here.")
    return LocalPlatform()


def configured() -> bool:
    """Whether there is a platform to ask (its API, or the local stand-in)."""
    return bool(settings.platform_api_url()) or settings.local_adapters()


def stand_in() -> LocalPlatform:
    """The local stand-in platform itself (its pay page, completions, API and settlement file)."""
    if not settings.local_adapters():
        raise Unavailable("platform_unavailable", "The local payment platform is off.")
    return LocalPlatform()
