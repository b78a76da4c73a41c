"""Endpoints of the fees-and-payment part of API.md, and the local payment platform's.

The applicant sees what is due and pays (``/dossiers/{code}/payments``); the platform's signed
notification (``/payments/notify``) is checked and applied by the payment service (a wrong
checksum: 401 and nothing changes); an agency asks for an obligation found during processing
(``request-payment``, a dossier action). The stand-in platform's endpoints exist only with
``LOCAL_ADAPTERS`` on.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json

from marshmallow import Schema, fields
from werkzeug.wrappers import Response

from gateway.http.json_body import read_json
from gateway.http.route import ApiCall, api
from gateway.routes.agency import AGENCY, _context
from gateway.routes.dossiers import APPLICANTS
from portal_common import config
from portal_common.contracts.payment import (
    PAYMENT_STATUSES,
    CreatePaymentBody,
    DisputeExemptionBody,
    PlatformCompleteBody,
    RequestPaymentBody,
    SettlementQuery,
)
from portal_common.errors import Conflict, InvalidInput, NotFound

TAGS = ("payments",)
DEV_TAGS = ("local stand-ins",)
LOCAL = config.env_bool("LOCAL_ADAPTERS", False, "gateway")


class FeeLine(Schema):
    id = fields.String()
    name = fields.String()
    amount = fields.Integer(metadata={"description": "VND"})
    basis = fields.String()
    copies = fields.Integer()


class DueItem(Schema):
    id = fields.String(metadata={"description": "pass it in fee_ids to pay only this"})
    amount = fields.Integer(metadata={"description": "VND"})
    reason = fields.String(allow_none=True)
    due_date = fields.String(allow_none=True)
    blocking = fields.Boolean(metadata={"description": "the dossier waits for it (its clock stopped)"})
    status = fields.String()
    fees = fields.List(fields.Nested(FeeLine))


class PaymentItem(Schema):
    id = fields.String()
    amount = fields.Integer(metadata={"description": "VND"})
    status = fields.String(metadata={"description": " | ".join(PAYMENT_STATUSES)})
    charge_ids = fields.List(fields.String())
    reference = fields.String()
    created_at = fields.String()
    paid_at = fields.String(allow_none=True)
    receipt_no = fields.String(allow_none=True)
    receipt_document_id = fields.String(allow_none=True, metadata={
        "description": "download at /api/v1/dossiers/{code}/documents/{receipt_document_id}"})
    refund_status = fields.String(allow_none=True)
    payment_url = fields.String(metadata={"description": "pending only: where the browser pays"})


class ExemptionItem(Schema):
    fee_id = fields.String()
    fee_name = fields.String()
    amount = fields.Integer(metadata={"description": "VND the fee would be"})
    exemption = fields.String(metadata={"description": "the group the applicant declared belonging to"})
    status = fields.String(metadata={"description": "exempt (nothing asked for the fee) | disputed (the agency "
                                                    "asked for it: see the due item request_id)"})
    declared_at = fields.String()
    disputed_at = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "why the agency disputed it"})
    request_id = fields.String(allow_none=True, metadata={"description": "the due item that asks for the fee"})


class PaymentsView(Schema):
    due = fields.List(fields.Nested(DueItem), required=True)
    items = fields.List(fields.Nested(PaymentItem), required=True)
    exemptions = fields.List(fields.Nested(ExemptionItem), required=True,
                             metadata={"description": "the fee exemptions declared at filing, and whether disputed"})


class NotifyResult(Schema):
    result = fields.String(metadata={"description": "applied, or already_applied for a repeat"})
    payment_id = fields.String()
    status = fields.String()
    RspCode = fields.String(metadata={"description": "00: accepted (the platform stops sending it)"})


def notification_fields(call: ApiCall) -> dict:
    """The notification's fields, from a JSON object, a form body or the query string."""
    request = call.request
    found: dict = dict(request.args.items())
    if request.mimetype == "application/json":
        body = read_json(request)
        if body is not None and not isinstance(body, dict):
            raise InvalidInput("invalid_notification", "Send the notification's fields as an object.")
        found.update(body or {})
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        found.update(request.form.items())
    return found


class PaymentRoutes:
    """Mixin of the gateway service; endpoints are declared with gateway.http.api."""

    @api("GET", "/api/v1/dossiers/<code>/payments", summary="What is due on my dossier, and every payment",
         tags=TAGS, response=PaymentsView, auth=APPLICANTS)
    def my_dossier_payments(self, call: ApiCall, code: str):
        dossier = self.dossier_rpc.get(call.context(), code)  # 404 unless the dossier is the caller's
        exemptions = dossier.get("fee_exemptions") or []
        try:
            return dict(self.payment_rpc.dossier_payments(call.context(), code), exemptions=exemptions)
        except NotFound:
            return {"due": [], "items": [], "exemptions": exemptions}  # nothing was ever due on it

    @api("POST", "/api/v1/dossiers/<code>/payments", summary="Pay what is due (all, or the fee_ids named)",
         tags=TAGS, body=CreatePaymentBody, response=PaymentItem, auth=APPLICANTS, status=201,
         responses={200: "A retry with the same key: the same payment",
                    409: "Nothing is due, or the Idempotency-Key was used for another payment"},
         description="Send an `Idempotency-Key` header: a retry with the same key answers the same payment. "
                     "Send the browser to `payment_url`; the platform's notification settles the payment.")
    def pay_dossier(self, call: ApiCall, code: str):
        key = call.request.headers.get("Idempotency-Key")
        try:
            view = self.payment_rpc.create_payment(call.context(), code, call.body.get("fee_ids"), key)
        except NotFound:
            self.dossier_rpc.get(call.context(), code)  # 404 unless the dossier is the caller's
            raise Conflict("nothing_due", "Nothing is due on this dossier.") from None
        created = view.pop("created", True)
        return (201 if created else 200), view

    @api("POST", "/api/v1/payments/notify", summary="The payment platform's signed notification",
         tags=TAGS, raw_body=True, response=NotifyResult,
         responses={401: "Wrong checksum: nothing changes", 404: "Unknown reference",
                    422: "Amount differs from the payment's"},
         description="Fields `vnp_*` as JSON, form or query string, with `vnp_SecureHash`: HMAC-SHA512 over "
                     "the other fields sorted by name (`name=value&...`, URL-encoded) with the merchant secret. "
                     "Repeats, late and out-of-order notifications have exactly one effect.")
    def payment_notify(self, call: ApiCall):
        result = self.payment_rpc.notify(notification_fields(call), call.context())
        return dict(result, RspCode="00")

    @api("POST", "/api/v1/agency/dossiers/<code>/request-payment",
         summary="Ask the applicant to pay an obligation found during processing (the clock stops)",
         tags=("agency",), body=RequestPaymentBody, auth=AGENCY, responses={409: "Not allowed in the current state"})
    def agency_request_payment(self, call: ApiCall, code: str):
        body = dict(call.body)
        if body.get("due_date") is not None:
            body["due_date"] = body["due_date"].isoformat()
        return self.dossier_rpc.act(_context(call), code, "request-payment", body)

    @api("POST", "/api/v1/agency/dossiers/<code>/dispute-exemption",
         summary="Dispute a fee exemption the applicant declared: the fee is requested after all",
         tags=("agency",), body=DisputeExemptionBody, auth=AGENCY,
         responses={409: "No undisputed exemption declared for this fee, or the dossier is closed"},
         description="Records `FeeExemptionDisputed` and a `DossierPaymentRequested` for the fee's amount "
                     "(blocking when the fee is due before reception). A retry with the same `X-Request-ID` "
                     "answers the dossier it made.")
    def agency_dispute_exemption(self, call: ApiCall, code: str):
        return self.dossier_rpc.act(_context(call), code, "dispute-exemption", dict(call.body))

    if LOCAL:

        @api("POST", "/api/v1/dev/payment-platform/complete",
             summary="The local payment platform settles a payment and sends its signed notification",
             tags=DEV_TAGS, body=PlatformCompleteBody, status=202,
             responses={404: "The platform has no such payment"})
        def dev_payment_complete(self, call: ApiCall):
            return 202, self.payment_rpc.platform_complete(str(call.body["payment_id"]), call.body["outcome"])

        @api("GET", "/api/v1/dev/payment-platform/settlements", summary="The local platform's settlement file "
             "for a day", tags=DEV_TAGS, query=SettlementQuery)
        def dev_payment_settlements(self, call: ApiCall):
            return self.payment_rpc.platform_settlements(call.query["date"].isoformat())

        @api("POST", "/api/v1/dev/payment-platform/merchant_webapi/api/transaction",
             summary="The local platform's merchant API: querydr and refund", tags=DEV_TAGS, raw_body=True,
             description="A JSON object of `vnp_*` fields with `vnp_Command` `querydr` or `refund` and "
                         "`vnp_SecureHash`: HMAC-SHA512 over the documented fields joined by `|` with the merchant "
                         "secret. The answer is signed the same way over its own fields; `vnp_ResponseCode` `00` "
                         "is success, `91` an unknown transaction, `97` a wrong checksum.")
        def dev_payment_api(self, call: ApiCall):
            body = read_json(call.request)
            if not isinstance(body, dict):
                raise InvalidInput("invalid_request", "Send the request's fields as a JSON object.")
            return self.payment_rpc.platform_api(body)

        @api("GET", "/api/v1/dev/payment-platform/pay", summary="The local platform's pay page (payment_url)",
             tags=DEV_TAGS, content_type="text/html", responses={404: "Not a request the platform was sent"})
        def dev_payment_page(self, call: ApiCall):
            page = self.payment_rpc.platform_page(dict(call.request.args.items()))
            body, script = pay_page(page), pay_script(page)
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            # the gateway's default policy forbids every script: allow this page's own, and its call home
            return Response(body, mimetype="text/html", headers={"Content-Security-Policy": (
                f"default-src 'none'; script-src 'sha256-{digest}'; connect-src 'self'; frame-ancestors 'none'")})


def pay_script(page: dict) -> str:
    """The pay page's script: each button settles the payment at the stand-in, and the page
    shows the platform's answer (the outcome once it accepted it)."""
    pid = json.dumps(str(page["payment_id"])).replace("<", "\\u003c")
    return ("function done(o){fetch('/api/v1/dev/payment-platform/complete',{method:'POST',"
            "headers:{'Content-Type':'application/json'},body:JSON.stringify({payment_id:" + pid + ",outcome:o})})"
            ".then(function(r){document.getElementById('s').textContent=r.ok?o:'error '+r.status;});}"
            "document.getElementById('ok').addEventListener('click',function(){done('success');});"
            "document.getElementById('no').addEventListener('click',function(){done('failure');});")


def pay_page(page: dict) -> str:
    """A minimal pay page: the amount, and buttons that settle the payment at the stand-in."""
    amount = f"{int(page['amount']):,}".replace(",", ".")
    script = pay_script(page)
    return ("<!doctype html><html lang=vi><meta charset=utf-8><title>Cổng thanh toán (thử)</title>"
            f"<h1>Thanh toán {amount} đồng</h1><p>{html.escape(str(page.get('order_info') or ''))}</p>"
            f"<p>Trạng thái: <span id=s>{html.escape(str(page['status']))}</span></p>"
            "<button type=button id=ok>Thanh toán</button> "
            "<button type=button id=no>Hủy</button>"
            f"<script>{script}</script></html>")


__all__ = ["PaymentRoutes"]
