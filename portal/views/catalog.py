"""Finding a procedure (search, life events, online services), reading it, choosing the
agency for one's province and ward, and the public lookup of a dossier by its code."""

from __future__ import annotations

import math
import re
import threading
import time

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from portal.api import ApiError
from portal.views import public

bp = Blueprint("catalog", __name__)
PAGE_SIZE = 10
MAX_AGENCIES = 30  # a province without a ward may have hundreds: ask for the ward instead
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _code(value: str) -> str:
    if not CODE.match(value or ""):
        abort(404)
    return value


_cache: dict[str, tuple[float, list]] = {}
_cache_lock = threading.Lock()
CACHE_SECONDS = 60.0


def _cached_list(path: str) -> list:
    """Lists that change a few times a year (fields, provinces), kept a minute so a results
    page costs one API call, not two."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(path)
    if hit and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    items = public("GET", path).get("items", [])
    with _cache_lock:
        _cache[path] = (now, items)
    return items


def _fields() -> list[dict]:
    try:
        return _cached_list("/api/v1/fields")
    except ApiError:
        return []


@bp.get("/")
def home() -> ResponseReturnValue:
    return render_template("home.html")


@bp.get("/thu-tuc")
def search() -> ResponseReturnValue:
    args = request.args
    filters = {k: args.get(k, "").strip()[:100] for k in ("q", "field", "level", "online", "target")}
    try:
        page = max(1, min(int(args.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    error = None
    result = {"items": [], "total": 0}
    try:
        result = public("GET", "/api/v1/procedures", params={**filters, "page": page, "page_size": PAGE_SIZE})
    except ApiError as err:
        if err.status not in (400, 422):
            raise
        error = err
    pages = max(1, math.ceil(result.get("total", 0) / PAGE_SIZE))
    return render_template("search.html", filters=filters, result=result, page=page, pages=pages,
                           fields=_fields(), error=error)


@bp.get("/su-kien")
def life_events() -> ResponseReturnValue:
    target = request.args.get("doi-tuong", "citizen")
    target = target if target in ("citizen", "business") else "citizen"
    events = public("GET", "/api/v1/life-events", params={"target": target}).get("items", [])
    return render_template("life_events.html", events=events, target=target)


@bp.get("/su-kien/<event_id>")
def life_event(event_id: str) -> ResponseReturnValue:
    event = public("GET", f"/api/v1/life-events/{_code(event_id)}")
    return render_template("life_event.html", event=event)


@bp.get("/dich-vu-truc-tuyen")
def online_services() -> ResponseReturnValue:
    try:
        page = max(1, min(int(request.args.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    result = public("GET", "/api/v1/procedures", params={"online": "full", "page": page, "page_size": 20})
    pages = max(1, math.ceil(result.get("total", 0) / 20))
    return render_template("online_services.html", result=result, page=page, pages=pages)


@bp.get("/thu-tuc/<code>")
def procedure(code: str) -> ResponseReturnValue:
    proc = public("GET", f"/api/v1/procedures/{_code(code)}")
    return render_template("procedure.html", proc=proc)


@bp.get("/thu-tuc/<code>/co-quan")
def choose_agency(code: str) -> ResponseReturnValue:
    proc = public("GET", f"/api/v1/procedures/{_code(code)}")
    provinces = _cached_list("/api/v1/provinces")
    province = request.args.get("tinh", "").strip()
    ward = request.args.get("xa", "").strip()
    wards: list = []
    agencies: list = []
    if province.isdigit():
        try:
            wards = public("GET", f"/api/v1/provinces/{int(province)}").get("wards", [])
        except ApiError as err:
            if err.status != 404:
                raise
            province = ""
        if province:
            params = {"province": province, "ward": ward if ward.isdigit() else None}
            agencies = public("GET", f"/api/v1/procedures/{proc['code']}/agencies", params=params).get("items", [])
    shown = agencies[:MAX_AGENCIES]
    return render_template("choose_agency.html", proc=proc, provinces=provinces, province=province, ward=ward,
                           wards=wards, agencies=shown, more=len(agencies) - len(shown))


def successor_of(agency: dict) -> dict | None:
    """The active agency that took over a dissolved one (following a chain of mergers)."""
    current, seen = agency, {agency.get("code")}
    for _ in range(5):
        succ = current.get("successor")
        code = succ.get("code") if isinstance(succ, dict) else succ
        if not code or code in seen or not CODE.match(str(code)):
            return current if current is not agency else None
        seen.add(code)
        try:
            current = public("GET", f"/api/v1/agencies/{code}")
        except ApiError as err:
            if err.status != 404:
                raise
            return None
        if current.get("status") != "dissolved" and not current.get("successor"):
            return current
    return None


@bp.get("/co-quan/<code>")
def agency(code: str) -> ResponseReturnValue:
    found = public("GET", f"/api/v1/agencies/{_code(code)}")
    successor = successor_of(found) if found.get("successor") else None
    return render_template("agency.html", agency=found, successor=successor)


@bp.get("/tra-cuu")
def lookup() -> ResponseReturnValue:
    code = request.args.get("ma", "").strip()[:64]
    found = None
    missing = False
    if code:
        if not CODE.match(code):
            missing = True
        else:
            try:
                found = public("GET", f"/api/v1/lookup/{code}")
            except ApiError as err:
                if err.status != 404:
                    raise
                missing = True
    return render_template("lookup.html", code=code, found=found, missing=missing), (404 if missing else 200)
