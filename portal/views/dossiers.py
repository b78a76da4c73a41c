"""The citizen's dossiers: the list (filter by status), one dossier (timeline, documents,
supplement answers with uploads, withdrawal, payments) and document downloads."""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask import (
    Blueprint,
    Response,
    abort,
    copy_current_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal import labels
from portal.api import ApiError
from portal.uploads import ACCEPT, check
from portal.views import citizen, gateway, lang, settings, signed_in
from portal.views.catalog import _code

bp = Blueprint("dossiers", __name__)
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="portal-api")
WITHDRAWABLE = ("submitted", "received", "processing", "supplement_requested", "supplemented")
DOWNLOAD_HEADERS = ("Content-Type", "Content-Disposition", "Content-Length")


@bp.get("/ho-so")
@signed_in
def my_dossiers() -> ResponseReturnValue:
    status = request.args.get("trang-thai", "")
    status = status if status in labels.STATUSES else ""
    try:
        page = max(1, min(int(request.args.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    result = citizen("GET", "/api/v1/dossiers", params={"status": status or None, "page": page, "page_size": 20})
    pages = max(1, math.ceil(result.get("total", 0) / 20))
    return render_template("my_dossiers.html", result=result, status=status, page=page, pages=pages,
                           flash=session.pop("flash", None))


def _payments(code: str, refresh: bool = True) -> dict | None:
    """The payments section, or None while the gateway serves no payments (404)."""
    try:
        return citizen("GET", f"/api/v1/dossiers/{code}/payments", refresh=refresh)
    except ApiError as err:
        if err.status == 404 or (err.status == 401 and not refresh):
            return None
        raise


def _page(code: str, errors: list | None = None, status: int = 200) -> ResponseReturnValue:
    # The payments are asked for beside the dossier, not after it. That call never trades the
    # refresh token (the dossier's call does), so two calls cannot race to renew it; when
    # the access token has just expired, the section waits for the next page.
    payments = _POOL.submit(copy_current_request_context(_payments), code, False)
    dossier = citizen("GET", f"/api/v1/dossiers/{code}")
    return render_template("dossier.html", d=dossier, payments=payments.result(), errors=errors or [],
                           withdrawable=dossier.get("status") in WITHDRAWABLE, accept=ACCEPT,
                           max_mb=settings().max_upload_bytes // (1024 * 1024),
                           flash=session.pop("flash", None)), status


@bp.get("/ho-so/<code>")
@signed_in
def dossier(code: str) -> ResponseReturnValue:
    return _page(_code(code))


@bp.get("/ho-so/<code>/tai-lieu/<doc_id>")
@signed_in
def download(code: str, doc_id: str) -> ResponseReturnValue:
    tokens = session.get("tokens") or {}
    resp = gateway().raw("GET", f"/api/v1/dossiers/{_code(code)}/documents/{_code(doc_id)}",
                         token=tokens.get("access_token"))
    if resp.status_code == 401:
        raise ApiError(401)
    if resp.status_code != 200:
        abort(404)
    headers = {k: resp.headers[k] for k in DOWNLOAD_HEADERS if k in resp.headers}
    headers.setdefault("Content-Disposition", "attachment")
    return Response(resp.content, headers=headers)


@bp.post("/ho-so/<code>/bo-sung")
@signed_in
def supplement(code: str) -> ResponseReturnValue:
    code = _code(code)
    cfg = settings()
    errors: list[tuple[str, str]] = []
    documents = []
    for upload in request.files.getlist("files")[:10]:
        checked, problem = check(upload, cfg.max_upload_bytes, cfg.file_types)
        if problem:
            errors.append(("f-files", f"{upload.filename}: {problem}"))
        elif checked:
            documents.append(checked.inline())
    note = request.form.get("note", "").strip()[:2000]
    if not documents and not note and not errors:
        errors.append(("f-files", _("Attach documents or write a note.")))
    if not errors:
        body = {"documents": documents, **({"note": note} if note else {})}
        try:
            citizen("POST", f"/api/v1/dossiers/{code}/supplement", json=body)
        except ApiError as err:
            if err.status not in (400, 409, 422):
                raise
            errors.append(("f-files", err.message(lang())))
    if errors:
        return _page(code, errors, 422)
    session["flash"] = _("Your supplement was sent.")
    return redirect(url_for("dossiers.dossier", code=code), 303)


@bp.post("/ho-so/<code>/rut")
@signed_in
def withdraw(code: str) -> ResponseReturnValue:
    code = _code(code)
    reason = request.form.get("reason", "").strip()[:2000]
    try:
        citizen("POST", f"/api/v1/dossiers/{code}/withdraw", json={"reason": reason or None})
    except ApiError as err:
        if err.status not in (400, 409, 422):
            raise
        return _page(code, [("f-reason", err.message(lang()))], 409)
    session["flash"] = _("Your dossier was withdrawn.")
    return redirect(url_for("dossiers.dossier", code=code), 303)


@bp.post("/ho-so/<code>/thanh-toan")
@signed_in
def pay(code: str) -> ResponseReturnValue:
    """Start paying what is due. The Idempotency-Key stays with the dossier until its payment
    failed or expired, so a double click or a retry never opens two payments."""
    code = _code(code)
    keys = dict(session.get("payment_keys") or {})
    kept = keys.get(code) or {}
    if kept.get("payment_id"):
        payments = _payments(code) or {}
        status = {p.get("id"): p.get("status") for p in payments.get("items", [])}.get(kept["payment_id"])
        if status in ("failed", "expired"):
            kept = {}
    key = kept.get("key") or str(uuid.uuid4())
    keys[code] = {"key": key, "payment_id": kept.get("payment_id")}
    session["payment_keys"] = keys
    fee_ids = [f for f in request.form.getlist("fee_id") if f][:20]
    try:
        created = citizen("POST", f"/api/v1/dossiers/{code}/payments", json={"fee_ids": fee_ids} if fee_ids else {},
                          headers={"Idempotency-Key": key})
    except ApiError as err:
        if err.status not in (400, 409, 422):
            raise
        return _page(code, [("pay", err.message(lang()))], err.status)
    keys[code] = {"key": key, "payment_id": created.get("id")}
    session["payment_keys"] = keys
    target = created.get("payment_url") or ""
    if not target.startswith(("https://", "http://")):
        abort(502)
    return redirect(target, 303)
