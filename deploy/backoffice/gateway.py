"""The agency's side of the gateway API: a token for the agency system, then actions on
dossiers (``POST /api/v1/agency/dossiers/<code>/<action>``)."""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

class GatewayError(Exception):
    def __init__(self, status: int, problem: Any):
        super().__init__(f"{status}: {problem}")
        self.status = status
        self.problem = problem


class AgencyClient:
    def __init__(self, gateway_url: str, agency_code: str, token: str | None = None, timeout_s: float = 15.0):
        self.base = gateway_url.rstrip("/")
        self.agency_code = agency_code
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> Any:
        try:
            return self._once(method, path, body, auth)
        except GatewayError as exc:
            if not (auth and exc.status == 401 and self.token):
                raise
            self.token = None  # expired or revoked: sign in again, once
            return self._once(method, path, body, auth)

    def _once(self, method: str, path: str, body: dict | None, auth: bool) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token or self.sign_in()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = raw[:200]
            raise GatewayError(exc.code, problem) from None
        return json.loads(raw) if raw else None

    def sign_in(self) -> str:
        """A development token for this agency's system (``POST /api/v1/dev/tokens``)."""
        reply = self._call("POST", "/api/v1/dev/tokens",
                           {"role": "agency_system", "agency_code": self.agency_code}, auth=False)
        self.token = reply["access_token"]
        return self.token

    def act(self, code: str, action: str, body: dict | None = None) -> Any:
        return self._call("POST", f"/api/v1/agency/dossiers/{code}/{action}", body or {})

    def acknowledge(self, delivery: dict) -> Any:
        """Tell the router a queued delivery was taken in (a callback's 2xx says it already)."""
        return self._call("POST", f"/api/v1/agency/deliveries/{delivery['delivery_id']}/ack", {})

    def view(self, code: str) -> Any:
        return self._call("GET", f"/api/v1/agency/dossiers/{code}")


def _pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (the portal stores only PDF, JPEG and PNG documents).

    Helvetica has no Vietnamese glyphs, so the page shows an ASCII rendering of the text."""
    line = text.encode("ascii", "replace").decode().replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 770 Td ({line}) Tj ET".encode()
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length %d>>stream\n" % len(stream) + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf_document(name: str, text: str) -> dict:
    return {"name": name, "content_type": "application/pdf",
            "content_base64": base64.b64encode(_pdf(text)).decode()}


def _code(value: Any) -> str | None:
    return value.get("code") if isinstance(value, dict) else value if isinstance(value, str) else None


class DriveThrough:
    """What the reference back office does with each new delivery.

    A submitted dossier is received, then (unless ``ask_supplement``) processed and its
    result attached and returned; with ``ask_supplement`` it first asks for a document and
    finishes when the ``DossierSupplemented`` delivery arrives. With ``hand_over``, a
    dossier whose delivery names a next step of a liên thông chain (``chain.agency``) is
    received and handed on to that agency instead. A dossier handed over to this agency
    (``DossierForwarded`` addressed to it) is processed to its result; the copy of a
    hand-over sent back to the agency that passed the dossier on is only noted. A dossier
    filed with its fees due (``awaiting_payment``: receiving it is a 409) waits for its
    ``DossierPaymentReceived`` delivery, then is received like a submission.

    The gateway refusing an action (4xx: the dossier was withdrawn, moved on, or is already
    past that step) is final and logged; anything else raises, so the delivery comes again.
    """

    def __init__(self, client: AgencyClient, ask_supplement: bool = False, hand_over: bool = False):
        self.client = client
        self.ask_supplement = ask_supplement
        self.hand_over = hand_over
        self.finished: list[str] = []
        self.handed_over: list[str] = []
        self.refused: list[tuple[str, int]] = []
        self.awaiting_payment: list[str] = []

    def __call__(self, delivery: dict) -> None:
        code = delivery["dossier_code"]
        try:
            self._handle(code, delivery["event_type"], delivery)
        except GatewayError as exc:
            if not 400 <= exc.status < 500 or exc.status in (401, 429):
                raise
            log.warning("back office %s: %s refused for %s: %s", self.client.agency_code,
                        delivery["event_type"], code, exc.problem)
            self.refused.append((code, exc.status))

    def _handle(self, code: str, event: str, delivery: dict) -> None:
        data = delivery.get("data") or {}
        if event == "DossierSubmitted":
            self._intake(code, delivery)
        elif event == "DossierPaymentReceived":
            # a dossier filed with its fees due waits in awaiting_payment; paid, it is submitted
            # and ours to receive (a payment asked for during processing needs nothing here)
            if (self.client.view(code) or {}).get("status") == "submitted":
                self._intake(code, delivery)
        elif event == "DossierForwarded":
            if _code(data.get("to_agency")) == delivery.get("addressed_to"):
                self._finish(code)  # handed over to us: our part of the chain
            else:
                log.info("back office %s: %s handed on to %s", self.client.agency_code, code,
                         _code(data.get("to_agency")))
        elif event == "DossierSupplemented":
            self._finish(code)

    def _intake(self, code: str, delivery: dict) -> None:
        """Receive a submitted dossier and carry it on; one still awaiting its fees is left
        until its ``DossierPaymentReceived`` delivery."""
        try:
            self.client.act(code, "receive", {"note": "received by the reference back office"})
        except GatewayError as exc:
            if exc.status == 409 and (self.client.view(code) or {}).get("status") == "awaiting_payment":
                log.info("back office %s: %s awaits its fees", self.client.agency_code, code)
                self.awaiting_payment.append(code)
                return
            raise
        step = delivery.get("chain") or {}
        if self.hand_over and _code(step.get("agency")):
            procedure = step.get("procedure") or {}
            self.client.act(code, "forward", {
                "to_agency_code": _code(step["agency"]),
                "reason": f"Liên thông: {procedure.get('name') or procedure.get('code')}"})
            self.handed_over.append(code)
        elif self.ask_supplement:
            self.client.act(code, "request-supplement",
                            {"reason": "a document is missing", "missing": ["a certified copy"]})
        else:
            self._finish(code)

    def _finish(self, code: str) -> None:
        self.client.act(code, "start-processing", {"note": "in processing"})
        self.client.act(code, "result", {"documents": [pdf_document("ket-qua.pdf", f"Result of {code}")]})
        self.client.act(code, "return", {"note": "result returned"})
        self.finished.append(code)
