"""The one-stop counter's desk (Bộ phận Một cửa): an agency officer signs in with the staff
account (username + password + one-time code), sees the agency's queue with overdue dossiers
first, opens one and receives, refuses, requests a supplement, asks for a payment found due
during processing, records a result or returns it."""

from __future__ import annotations

import contextlib
import re

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal import labels
from portal.api import ApiError
from portal.security import renew_session
from portal.uploads import ACCEPT, check
from portal.views import desk_signed_in, gateway, lang, officer, public, settings
from portal.views.catalog import _code

bp = Blueprint("desk", __name__, url_prefix="/mot-cua")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
ACTIONS = ("receive", "refuse", "request-supplement", "start-processing", "result", "return", "dispute-exemption",
           "request-payment")
MAX_AMOUNT = 10**12  # VND, as the API accepts
AMOUNT = re.compile(r"^\d{1,3}(?:[.,\s]\d{3})+$|^\d{1,13}$")  # 200000, 200.000, 200,000 or 200 000
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The request-payment form's fields, by the API's field names (for the API's 422 per field).
PAYMENT_FIELDS = {"amount": "request-payment-amount", "reason": "request-payment-reason",
                  "due_date": "request-payment-due"}


@bp.route("/dang-nhap", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    errors: list[tuple[str, str]] = []
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        if not USERNAME.match(username):
            errors.append(("f-username", _("Enter your staff user name.")))
        if not password:
            errors.append(("f-password", _("Enter your password.")))
        if not errors:
            try:
                step = public("POST", "/api/v1/auth/staff/login", json={"username": username, "password": password})
            except ApiError as err:
                if err.status == 429:
                    raise
                errors.append(("f-username", _("The user name or password is not correct.")))
            else:
                session["pending_login"] = {"login_id": step["login_id"], "kind": "officer"}
                return redirect(url_for("desk.sign_in_code"))
    return render_template("desk/sign_in.html", errors=errors, username=username), (422 if errors else 200)


@bp.route("/dang-nhap/ma-xac-thuc", methods=["GET", "POST"])
def sign_in_code() -> ResponseReturnValue:
    pending = session.get("pending_login")
    if not pending or pending.get("kind") != "officer":
        return redirect(url_for("desk.sign_in"))
    errors: list[tuple[str, str]] = []
    if request.method == "POST":
        otp = request.form.get("otp", "").strip()
        try:
            tokens = public("POST", "/api/v1/auth/login/confirm", json={"login_id": pending["login_id"], "otp": otp})
        except ApiError as err:
            if err.status == 429:
                raise
            errors.append(("f-otp", _("The code is not correct or has expired.")))
        else:
            renew_session()
            session["officer_tokens"] = {"access_token": tokens["access_token"],
                                         "refresh_token": tokens.get("refresh_token")}
            me = officer("GET", "/api/v1/me")
            if me.get("role") != "officer" or not me.get("agency_code"):
                session.pop("officer_tokens", None)
                return render_template("error.html", title=_("Not allowed"),
                                       message=_("This desk is for officers of an agency.")), 403
            session["officer"] = {"full_name": me.get("full_name"), "agency_code": me.get("agency_code")}
            return redirect(url_for("desk.queue"))
    return render_template("otp.html", errors=errors, action=url_for("desk.sign_in_code"),
                           title=_("Enter the sign-in code")), (422 if errors else 200)


@bp.post("/dang-xuat")
def sign_out() -> ResponseReturnValue:
    tokens = session.get("officer_tokens") or {}
    if tokens.get("access_token"):
        with contextlib.suppress(ApiError):
            officer("POST", "/api/v1/auth/logout", json={"refresh_token": tokens.get("refresh_token")})
    renew_session()
    return redirect(url_for("desk.sign_in"))


@bp.get("/")
@desk_signed_in
def queue() -> ResponseReturnValue:
    status = request.args.get("trang-thai", "")
    status = status if status in labels.STATUSES else ""
    result = officer("GET", "/api/v1/agency/dossiers", params={"status": status or None, "page_size": 100})
    items = sorted(result.get("items", []), key=lambda d: (
        not d.get("overdue"), d.get("appointment_date") or "9999", d.get("submitted_at") or ""))
    return render_template("desk/queue.html", items=items, total=result.get("total", 0), status=status,
                           flash=session.pop("flash", None))


def _page(code: str, errors: list | None = None, status: int = 200) -> ResponseReturnValue:
    dossier = officer("GET", f"/api/v1/agency/dossiers/{code}")
    return render_template("desk/dossier.html", d=dossier, errors=errors or [], accept=ACCEPT), status


@bp.get("/ho-so/<code>")
@desk_signed_in
def dossier(code: str) -> ResponseReturnValue:
    return _page(_code(code))


@bp.get("/ho-so/<code>/tai-lieu/<doc_id>")
@desk_signed_in
def download(code: str, doc_id: str) -> ResponseReturnValue:
    tokens = session.get("officer_tokens") or {}
    resp = gateway().raw("GET", f"/api/v1/agency/dossiers/{_code(code)}/documents/{_code(doc_id)}",
                         token=tokens.get("access_token"))
    if resp.status_code != 200:
        abort(404)
    headers = {k: resp.headers[k] for k in ("Content-Type", "Content-Disposition") if k in resp.headers}
    return Response(resp.content, headers={"Content-Disposition": "attachment", **headers})


@bp.post("/ho-so/<code>/<action>")
@desk_signed_in
def act(code: str, action: str) -> ResponseReturnValue:
    code = _code(code)
    if action not in ACTIONS:
        abort(404)
    form = request.form
    body: dict = {}
    errors: list[tuple[str, str]] = []
    note = form.get("note", "").strip()[:2000]
    reason = form.get("reason", "").strip()[:2000]
    if note:
        body["note"] = note
    if action == "dispute-exemption":
        body["fee_id"] = form.get("fee_id", "").strip()[:100]
    if action == "request-payment":
        errors.extend(_payment_request(form, body))
    if action in ("refuse", "request-supplement", "dispute-exemption", "request-payment"):
        if not reason:
            errors.append((f"{action}-reason", _("Give the reason.")))
        body["reason"] = reason
    if action == "request-supplement":
        missing = [line.strip() for line in form.get("missing", "").splitlines() if line.strip()][:30]
        if not missing:
            errors.append((f"{action}-missing", _("List the missing documents, one per line.")))
        body["missing"] = missing
        if form.get("due_date"):
            body["due_date"] = form["due_date"][:10]
    if action == "result":
        cfg = settings()
        docs = []
        for upload in request.files.getlist("files")[:10]:
            checked, problem = check(upload, cfg.max_upload_bytes, cfg.file_types)
            if problem:
                errors.append(("result-files", f"{upload.filename}: {problem}"))
            elif checked:
                docs.append(checked.inline())
        if not docs and not errors:
            errors.append(("result-files", _("Attach the result document.")))
        body["documents"] = docs
    if not errors:
        try:
            officer("POST", f"/api/v1/agency/dossiers/{code}/{action}", json=body)
        except ApiError as err:
            if err.status not in (400, 409, 422):
                raise
            fields = err.field_errors() if action == "request-payment" else {}
            errors.extend((PAYMENT_FIELDS[f], m) for f, m in fields.items() if f in PAYMENT_FIELDS)
            if not errors:  # not a field's fault (e.g. 409: not in this status)
                errors.append(("", err.message(lang())))
    if errors:
        return _page(code, errors, 422)
    session["flash"] = _("Payment requested from the applicant.") if action == "request-payment" else _("Done.")
    return redirect(url_for("desk.dossier", code=code), 303)


def _payment_request(form, body: dict) -> list[tuple[str, str]]:
    """Read the request-payment form into ``body`` (amount in đồng, optional due date); the
    errors by field (the reason is checked with the other actions' reasons)."""
    errors: list[tuple[str, str]] = []
    raw = form.get("amount", "").strip()[:40]
    amount = int(re.sub(r"[.,\s]", "", raw)) if AMOUNT.match(raw) else 0
    if not raw:
        errors.append(("request-payment-amount", _("Enter the amount to pay, in đồng.")))
    elif not 1 <= amount <= MAX_AMOUNT:
        errors.append(("request-payment-amount",
                       _("Enter the amount as a whole number of đồng, from 1 to 1.000.000.000.000, such as 200.000.")))
    body["amount"] = amount
    due = form.get("due_date", "").strip()[:20]
    if due:
        if DATE.match(due):
            body["due_date"] = due
        else:
            errors.append(("request-payment-due", _("Enter the date as YYYY-MM-DD.")))
    return errors
