"""Filing a dossier: the form with one upload per required document, a review step, the
submission (one Idempotency-Key per filing, kept in the session's draft, so a double click
or a retry never files twice) and the printable receipt with its QR code."""

from __future__ import annotations

import re
import threading
import uuid

import segno
from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from markupsafe import Markup

from portal.api import ApiError
from portal.uploads import ACCEPT, check
from portal.views import citizen, lang, public, settings, signed_in
from portal.views.catalog import _code, successor_of

bp = Blueprint("filing", __name__)
MAX_DRAFTS = 2  # drafts hold their uploads in memory until filed: few per session
APPLICANT = ("full_name", "id_number", "date_of_birth", "phone", "email", "address")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_filing_locks: dict[str, threading.Lock] = {}
_filed: dict[str, str] = {}  # idempotency key -> dossier code, for clicks racing in this process
_guard = threading.Lock()


def _draft(draft_id: str) -> dict:
    draft = (session.get("drafts") or {}).get(draft_id)
    if draft is None:
        abort(404)
    return draft


def exemptable_fees(proc: dict) -> list[dict]:
    """The procedure's fees that list exemptions and cost something: ``{id, name, amount, exemptions}``
    (a fee stored without an id is ``fee1``, ``fee2``... as the API names it)."""
    fees = []
    for i, fee in enumerate(proc.get("fees") or []):
        amount = fee.get("amount", fee.get("amount_vnd")) or 0
        exemptions = [str(e) for e in fee.get("exemptions") or [] if e]
        if exemptions and isinstance(amount, int) and amount > 0:
            fees.append({"id": str(fee.get("id") or f"fee{i + 1}"), "name": fee.get("name") or _("Fee"),
                         "amount": amount, "exemptions": exemptions})
    return fees


def _save_draft(draft: dict) -> None:
    drafts = dict(session.get("drafts") or {})
    drafts[draft["id"]] = draft
    while len(drafts) > MAX_DRAFTS:
        drafts.pop(next(iter(drafts)))
    session["drafts"] = drafts


@bp.route("/thu-tuc/<code>/nop", methods=["GET", "POST"])
@signed_in
def form(code: str) -> ResponseReturnValue:
    proc = public("GET", f"/api/v1/procedures/{_code(code)}")
    agency_code = request.values.get("co_quan", "")
    if not agency_code:
        return redirect(url_for("catalog.choose_agency", code=proc["code"]))
    agency = public("GET", f"/api/v1/agencies/{_code(agency_code)}")
    if agency.get("status") == "dissolved" or agency.get("successor"):
        return render_template("agency.html", agency=agency, proc=proc, successor=successor_of(agency)), 409
    user = session.get("user") or {}
    values = {"full_name": user.get("full_name") or "", "id_number": user.get("identifier") or "",
              "date_of_birth": "", "phone": "", "email": "", "address": "", "note": ""}
    errors: list[tuple[str, str]] = []
    exemptable = exemptable_fees(proc)
    chosen: dict[str, str] = {}
    place = f"{proc['code']}|{agency['code']}"
    if request.method == "GET":
        session.pop("kept_uploads", None)
    if request.method == "POST":
        values = {k: request.form.get(k, "").strip()[:500] for k in (*APPLICANT, "note")}
        if not values["full_name"]:
            errors.append(("f-full_name", _("Enter the applicant's full name.")))
        if values["date_of_birth"] and not DATE.match(values["date_of_birth"]):
            errors.append(("f-date_of_birth", _("Enter the date as YYYY-MM-DD.")))
        for fee in exemptable:  # "none" by default; anything else must be one the fee lists
            choice = request.form.get(f"exempt-{fee['id']}", "").strip()
            if choice and choice not in fee["exemptions"]:
                errors.append((f"exempt-{fee['id']}", _("Choose one of the listed exemptions, or none.")))
            elif choice:
                chosen[fee["id"]] = choice
        documents = []
        cfg = settings()
        kept = dict((session.get("kept_uploads") or {}).get(place, {}))
        for doc in proc.get("required_documents", []):
            checked, problem = check(request.files.get(f"doc-{doc['id']}"), cfg.max_upload_bytes, cfg.file_types)
            if problem:
                kept.pop(doc["id"], None)
                errors.append((f"doc-{doc['id']}", f"{doc['name']}: {problem}"))
            elif checked is not None:
                kept[doc["id"]] = {**checked.inline(doc["id"]), "size": len(checked.content), "label": doc["name"]}
            if not problem and doc["id"] in kept:
                documents.append(kept[doc["id"]])
            elif not problem and doc.get("mandatory"):
                errors.append((f"doc-{doc['id']}", _("%(name)s: this document is required.", name=doc["name"])))
        # Files that passed are kept for the next try of this form, so only the faulty ones
        # are chosen again; they go with the draft (or are dropped) once the form passes.
        session["kept_uploads"] = {place: kept} if errors else {}
        if not errors:
            applicant = {k: values[k] for k in APPLICANT if values[k]}
            for key in ("province", "ward"):
                if agency.get(f"{key}_code") is not None:
                    applicant[key] = str(agency[f"{key}_code"])
            draft = {"id": uuid.uuid4().hex, "key": str(uuid.uuid4()),
                     "procedure": {"code": proc["code"], "name": proc["name"],
                                   "processing_days": proc.get("processing_days")},
                     "agency": {"code": agency["code"], "name": agency["name"]},
                     "applicant": applicant, "form": {"ghi_chu": values["note"]} if values["note"] else {},
                     "documents": documents, "dossier": None,
                     "fee_exemptions": [{"fee_id": f["id"], "fee_name": f["name"], "amount": f["amount"],
                                         "exemption": chosen[f["id"]]} for f in exemptable if f["id"] in chosen]}
            _save_draft(draft)
            return redirect(url_for("filing.review", draft_id=draft["id"]))
    kept_names = {k: v["name"] for k, v in ((session.get("kept_uploads") or {}).get(place) or {}).items()}
    return render_template("file_form.html", proc=proc, agency=agency, values=values, errors=errors, kept=kept_names,
                           exemptable=exemptable, chosen=chosen, accept=ACCEPT,
                           max_mb=settings().max_upload_bytes // (1024 * 1024)), (
        422 if errors else 200)


@bp.get("/nop-ho-so/<draft_id>/xem-lai")
@signed_in
def review(draft_id: str) -> ResponseReturnValue:
    draft = _draft(draft_id)
    if draft.get("dossier"):
        return redirect(url_for("filing.receipt", code=draft["dossier"]))
    return render_template("review.html", draft=draft, errors=[])


@bp.post("/nop-ho-so/<draft_id>/nop")
@signed_in
def submit(draft_id: str) -> ResponseReturnValue:
    draft = _draft(draft_id)
    key = draft["key"]
    with _guard:
        lock = _filing_locks.setdefault(key, threading.Lock())
    try:
        with lock:  # a second click waits for the first and then finds its dossier
            code = draft.get("dossier") or _filed.get(key)
            if not code:
                body = {"procedure_code": draft["procedure"]["code"], "agency_code": draft["agency"]["code"],
                        "applicant": draft["applicant"], "form": draft["form"],
                        "documents": [{k: d[k] for k in ("requirement", "name", "content_type", "content_base64")}
                                      for d in draft["documents"]]}
                if draft.get("fee_exemptions"):
                    body["fee_exemptions"] = [{"fee_id": e["fee_id"], "exemption": e["exemption"]}
                                              for e in draft["fee_exemptions"]]
                try:
                    created = citizen("POST", "/api/v1/dossiers", json=body, headers={"Idempotency-Key": key})
                except ApiError as err:
                    if err.status in (400, 409, 422):
                        return render_template("review.html", draft=draft,
                                               errors=[("", err.message(lang()))]), err.status
                    raise
                code = created["code"]
                with _guard:
                    _filed[key] = code
                    while len(_filed) > 10_000:
                        _filed.pop(next(iter(_filed)))
    finally:
        with _guard:
            _filing_locks.pop(key, None)
    draft = {**draft, "dossier": code, "documents": []}  # filed: the uploads are no longer needed here
    _save_draft(draft)
    return redirect(url_for("filing.receipt", code=code), 303)


def qr_svg(url: str) -> Markup:
    """The QR code of ``url`` as inline SVG (no image request, nothing external)."""
    svg = segno.make(url, error="m").svg_inline(scale=4, border=4, dark="#000", light="#fff",
                                                title=_("QR code: look this dossier up"))
    return Markup(svg)  # noqa: S704 - segno's own markup, built from a URL it escapes


@bp.get("/ho-so/<code>/giay-tiep-nhan")
@signed_in
def receipt(code: str) -> ResponseReturnValue:
    dossier = citizen("GET", f"/api/v1/dossiers/{_code(code)}")
    base = settings().public_url or request.host_url.rstrip("/")
    lookup_url = f"{base}{url_for('catalog.lookup', ma=dossier['code'])}"
    return render_template("receipt.html", d=dossier, qr=qr_svg(lookup_url), lookup_url=lookup_url)
