"""Registering (mobile subscription or social-insurance code, each confirmed by a one-time
code, or a digital-signature certificate), signing in (CCCD or old CMT + password + one-time
code, a digital-signature certificate, or VNeID), signing out and the account page. Tokens go
into the server-side session only."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal.api import ApiError
from portal.app import safe_next
from portal.security import renew_session
from portal.views import certificate, citizen, lang, public, settings, signed_in

bp = Blueprint("account", __name__)
ID_NUMBER = re.compile(r"^(\d{9}|\d{12})$")
OTP = re.compile(r"^\d{6}$")
T = TypeVar("T")
_vneid = {"checked": 0.0, "offered": True}
_vneid_lock = threading.Lock()


def _portal_url() -> str:
    return settings().public_url or request.host_url.rstrip("/")


def vneid_offered() -> bool:
    """Whether the gateway serves VNeID sign-in (its start call is not a 404); asked once a minute."""
    with _vneid_lock:
        if time.monotonic() - _vneid["checked"] < 60:
            return bool(_vneid["offered"])
    try:
        public("POST", "/api/v1/auth/vneid/start", json={"redirect_uri": f"{_portal_url()}/dang-nhap/vneid"})
        offered = True
    except ApiError as err:
        offered = err.status != 404
    with _vneid_lock:
        _vneid.update(checked=time.monotonic(), offered=offered)
    return offered


def _start_session(tokens: dict, next_url: str) -> str:
    renew_session()
    session["tokens"] = {"access_token": tokens["access_token"], "refresh_token": tokens.get("refresh_token")}
    me = citizen("GET", "/api/v1/me")
    session["user"] = {"full_name": me.get("full_name"), "identifier": me.get("identifier"),
                       "role": me.get("role")}
    return next_url


def _problem_errors(err: ApiError) -> list[tuple[str, str]]:
    """Field errors of a validation problem as (field id, message) pairs."""
    return [(f"f-{k}", v) for k, v in err.field_errors().items()] or [("", err.message(lang()))]


@bp.route("/dang-nhap", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    next_url = safe_next(request.values.get("next"), url_for("dossiers.my_dossiers"))
    if request.values.get("cach") == certificate.METHOD:
        return _certificate_sign_in(next_url)
    errors: list[tuple[str, str]] = []
    id_number = ""
    if request.method == "POST":
        id_number = request.form.get("id_number", "").strip()
        password = request.form.get("password", "")
        if not ID_NUMBER.match(id_number):
            errors.append(("f-id_number", _("Enter your 12-digit CCCD or 9-digit CMT number.")))
        if not password:
            errors.append(("f-password", _("Enter your password.")))
        if not errors:
            try:
                step = public("POST", "/api/v1/auth/login",
                              json={"method": "password", "cccd": id_number, "password": password})
            except ApiError as err:
                if err.status == 429:
                    raise
                errors.append(("f-id_number", _("The ID number or password is not correct.")))
            else:
                session["pending_login"] = {"login_id": step["login_id"], "next": next_url, "kind": "citizen"}
                return redirect(url_for("account.sign_in_code"))
    return render_template("sign_in.html", errors=errors, id_number=id_number, next=next_url,
                           vneid=vneid_offered()), (422 if errors else 200)


def _confirm_code(errors: list[tuple[str, str]], confirm: Callable[[str], T]) -> T | None:
    """The one-time-code step of signing in and of registering: check the form's code, then
    ``confirm(otp)`` through the API. A malformed or refused code is added to ``errors`` (the
    form shows it again); too many tries (429) goes to the error page."""
    otp = request.form.get("otp", "").strip()
    if not OTP.match(otp):
        errors.append(("f-otp", _("Enter the 6-digit code sent to your phone.")))
        return None
    try:
        return confirm(otp)
    except ApiError as err:
        if err.status == 429:
            raise
        errors.append(("f-otp", _("The code is not correct or has expired.")))
        return None


def _certificate_proof(purpose: str, errors: list[tuple[str, str]], values: dict) -> dict | None:
    """The proof fields of the API's body from the form, or None with ``errors`` filled. The
    session's challenge is spent only when the rest of the form is in order, so fixing a
    missing field needs no new signature."""
    pems = certificate.read_certificate(errors)
    values["certificate_pem"] = "".join(pems) or request.form.get("certificate_pem", "").strip()
    signature = values["signature"] = certificate.read_signature(errors)
    if errors:
        return None
    values["signature"] = ""  # whatever happens now, the next attempt signs a new text
    challenge_id = certificate.take_challenge(purpose, errors)
    if challenge_id is None:
        return None
    return {"certificate_pem": pems[0], "chain_pem": pems[1:], "challenge_id": challenge_id, "signature": signature}


def _certificate_page(template: str, purpose: str, errors: list[tuple[str, str]], **context) -> ResponseReturnValue:
    """The certificate form with the challenge to sign (the session's, or a fresh one)."""
    held = certificate.challenge(purpose)
    return render_template(template, errors=errors, challenge=held, minutes=certificate.minutes_left(held),
                           accept=certificate.FILE_ACCEPT, method=certificate.METHOD, **context), (
        422 if errors else 200)


def _send_proof(path: str, body: dict, errors: list[tuple[str, str]], certificate_field: str) -> dict | None:
    """The gateway's answer to a proof, or None with its refusal in ``errors``; too many
    requests and failures of the system go to the error page like every form's."""
    try:
        return public("POST", path, json=body)
    except ApiError as err:
        if err.status == 429 or err.status >= 500:
            raise
        errors.extend(certificate.refusal(err, certificate_field))
        return None


def _certificate_sign_in(next_url: str) -> ResponseReturnValue:
    errors: list[tuple[str, str]] = []
    values = {"certificate_pem": "", "signature": ""}
    if request.method == "POST":
        proof = _certificate_proof("login", errors, values)
        if proof is not None:
            tokens = _send_proof("/api/v1/auth/login", {"method": "certificate", **proof}, errors, "f-certificate")
            if tokens is not None:
                return redirect(_start_session(tokens, next_url))
    return _certificate_page("sign_in_certificate.html", "login", errors, values=values, next=next_url)


CERT_REGISTER_FIELDS = ("account_type", "certificate_kind", "full_name", "business_name", "representative_cccd",
                        "phone")


def _certificate_holder(values: dict, errors: list[tuple[str, str]]) -> dict:
    """The registration's own fields (who registers, on what kind of token), checked."""
    if values["account_type"] not in ("citizen", "business"):
        values["account_type"] = "citizen"
    if values["certificate_kind"] not in ("usb_token", "sim"):
        values["certificate_kind"] = "usb_token"
    body = {"account_type": values["account_type"], "certificate_kind": values["certificate_kind"]}
    wanted = ("full_name", "phone") if values["account_type"] == "citizen" else (
        "business_name", "representative_cccd", "phone")
    body.update({k: values[k] for k in wanted if values[k]})
    if values["account_type"] == "business" and not re.match(r"^\d{12}$", values["representative_cccd"]):
        errors.append(("f-representative_cccd", _("Enter the legal representative's CCCD number (12 digits).")))
    return body


def _certificate_register(next_url: str) -> ResponseReturnValue:
    errors: list[tuple[str, str]] = []
    values = {k: request.form.get(k, "").strip()[:200] for k in CERT_REGISTER_FIELDS}
    values.update(certificate_pem="", signature="")
    if request.method == "POST":
        holder = _certificate_holder(values, errors)
        proof = _certificate_proof("register", errors, values)
        if proof is not None:
            tokens = _send_proof("/api/v1/auth/register/certificate", {**proof, **holder}, errors, "f-certificate")
            if tokens is not None:
                target = _start_session(tokens, next_url or url_for("dossiers.my_dossiers"))
                if not next_url:
                    session["flash"] = _("Your account is ready. You are signed in.")
                return redirect(target)
    values["account_type"] = values["account_type"] or "citizen"
    values["certificate_kind"] = values["certificate_kind"] or "usb_token"
    return _certificate_page("register_certificate.html", "register", errors, values=values, next=next_url)


@bp.route("/dang-nhap/ma-xac-thuc", methods=["GET", "POST"])
def sign_in_code() -> ResponseReturnValue:
    pending = session.get("pending_login")
    if not pending or pending.get("kind") != "citizen":
        return redirect(url_for("account.sign_in"))
    errors: list[tuple[str, str]] = []
    if request.method == "POST":
        tokens = _confirm_code(errors, lambda otp: public("POST", "/api/v1/auth/login/confirm",
                                                         json={"login_id": pending["login_id"], "otp": otp}))
        if not errors:
            return redirect(_start_session(tokens, pending.get("next") or "/"))
    return render_template("otp.html", errors=errors, action=url_for("account.sign_in_code"),
                           title=_("Enter the sign-in code")), (422 if errors else 200)


@bp.get("/dang-nhap/vneid")
def vneid() -> ResponseReturnValue:
    code, state = request.args.get("code"), request.args.get("state")
    if request.args.get("error"):  # VNeID said no (the person refused, or is unknown): say so, never start over
        session.pop("vneid_next", None)
        return render_template("error.html", title=_("VNeID sign-in failed"),
                               message=_("VNeID sign-in did not succeed. Please try again.")), 400
    if code and state:
        try:
            tokens = public("POST", "/api/v1/auth/vneid/complete", json={"code": code[:2000], "state": state[:500]})
        except ApiError as err:
            if err.status in (400, 401, 403, 404, 409, 422):
                return render_template("error.html", title=_("VNeID sign-in failed"),
                                       message=_("VNeID sign-in did not succeed. Please try again.")), 400
            raise
        return redirect(_start_session(tokens, session.pop("vneid_next", None) or url_for("dossiers.my_dossiers")))
    started = public("POST", "/api/v1/auth/vneid/start", json={"redirect_uri": f"{_portal_url()}/dang-nhap/vneid"})
    session["vneid_next"] = safe_next(request.args.get("next"), url_for("dossiers.my_dossiers"))
    return redirect(started["authorization_url"])


@bp.post("/dang-xuat")
def sign_out() -> ResponseReturnValue:
    tokens = session.get("tokens") or {}
    if tokens.get("access_token"):
        with contextlib.suppress(ApiError):  # the session ends here whatever the gateway says
            citizen("POST", "/api/v1/auth/logout", json={"refresh_token": tokens.get("refresh_token")})
    renew_session()
    return redirect(url_for("catalog.home"))


@bp.get("/tai-khoan")
@signed_in
def my_account() -> ResponseReturnValue:
    me = citizen("GET", "/api/v1/me")
    return render_template("account.html", me=me)


REGISTER_FIELDS = ("cccd", "full_name", "date_of_birth", "gender", "phone", "password")


@bp.route("/dang-ky", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    method = request.values.get("cach", "mobile")
    next_url = safe_next(request.values.get("next"), "")
    if method == certificate.METHOD:
        return _certificate_register(next_url)
    method = method if method in ("mobile", "bhxh") else "mobile"
    errors: list[tuple[str, str]] = []
    values = {k: request.form.get(k, "").strip() for k in (*REGISTER_FIELDS, "bhxh_code")}
    if request.method == "POST":
        values["password"] = request.form.get("password", "")
        required = REGISTER_FIELDS + (("bhxh_code",) if method == "bhxh" else ())
        names = {"cccd": _("CCCD number"), "full_name": _("Full name"), "date_of_birth": _("Date of birth"),
                 "gender": _("Gender"), "phone": _("Mobile phone number"), "password": _("Password"),
                 "bhxh_code": _("Social-insurance (BHXH) code")}
        for name in required:
            if not values[name]:
                errors.append((f"f-{name}", _("Enter: %(field)s.", field=names[name])))
        if values["cccd"] and not re.match(r"^\d{12}$", values["cccd"]):
            errors.append(("f-cccd", _("A CCCD number has 12 digits.")))
        if values["password"] and values["password"] != request.form.get("password2", ""):
            errors.append(("f-password2", _("The two passwords differ.")))
        if not errors:
            body = {k: values[k] for k in REGISTER_FIELDS}
            if method == "bhxh":
                body["bhxh_code"] = values["bhxh_code"]
            try:
                started = public("POST", f"/api/v1/auth/register/{method}", json=body)
            except ApiError as err:
                if err.status == 429 or err.status >= 500:
                    raise
                errors.extend(_problem_errors(err))
            else:
                session["pending_registration"] = {"id": started["registration_id"], "method": method,
                                                   "next": next_url}
                return redirect(url_for("account.register_code"))
    values.pop("password", None)
    return render_template("register.html", errors=errors, values=values, method=method, next=next_url), (
        422 if errors else 200)


@bp.route("/dang-ky/ma-xac-thuc", methods=["GET", "POST"])
def register_code() -> ResponseReturnValue:
    pending = session.get("pending_registration")
    if not pending:
        return redirect(url_for("account.register"))
    errors: list[tuple[str, str]] = []
    if request.method == "POST":
        _confirm_code(errors, lambda otp: public("POST", f"/api/v1/auth/register/{pending['method']}/confirm",
                                                 json={"registration_id": pending["id"], "otp": otp}))
        if not errors:
            session.pop("pending_registration", None)
            session["flash"] = _("Your account is ready. Please sign in.")
            return redirect(url_for("account.sign_in", next=pending.get("next") or None))
    return render_template("otp.html", errors=errors, action=url_for("account.register_code"),
                           title=_("Confirm your phone number")), (422 if errors else 200)
