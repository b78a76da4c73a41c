"""The Flask application: sessions, CSRF, language, error pages and the blueprints."""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
import zoneinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, g, redirect, render_template, request, session, url_for
from flask_babel import Babel, get_locale, get_translations
from flask_babel import gettext as _
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from portal import labels
from portal.api import ApiError, Gateway
from portal.config import Settings
from portal.security import check_csrf, csrf_token, security_headers
from portal.sessions import SessionStoreUnavailable, refuse_without_store, session_store
from portal.translations.compile import translations_dir

HERE = Path(__file__).resolve().parent
ACCESS_LOG = logging.getLogger("portal.access")
LANGUAGES = ("vi", "en")
try:
    LOCAL_TZ: dt.tzinfo = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
except zoneinfo.ZoneInfoNotFoundError:  # a system without tzdata: Vietnam has no daylight saving
    LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))


def _select_locale() -> str:
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "vi"


def _translations() -> Any:
    found = g.get("_translations")
    if found is None:
        found = g._translations = get_translations()
    return found


def _fast_gettext(message: str, **_variables) -> str:
    return _translations().ugettext(message)


def _fast_ngettext(singular: str, plural: str, num: int, **_variables) -> str:
    return _translations().ungettext(singular, plural, num)


def _catalogue_markup(text: str) -> Markup:
    """A message of the portal's own catalogue is trusted HTML text, as Jinja's gettext treats it;
    the values put into it are escaped by ``%``."""
    return Markup(text)  # noqa: S704 - our own catalogue, never request data


_LINKS: dict[tuple, str] = {}
_MAX_LINKS = 20_000


def _template_url_for(endpoint: str, **values: Any) -> str:
    """``url_for`` in templates, remembered: a page builds the same twenty-odd links each time
    (menus, static files, a procedure's page), and werkzeug's builder costs microseconds each.
    Links carrying the visitor's own path (``next``) or long values are built every time."""
    if "next" in values or not all(isinstance(v, str) and len(v) <= 64 for v in values.values()):
        return url_for(endpoint, **values)  # a link back to where the visitor is: not worth keeping
    key = (request.script_root, endpoint, *sorted(values.items()))
    found = _LINKS.get(key)
    if found is None:
        found = url_for(endpoint, **values)
        if len(_LINKS) < _MAX_LINKS:
            _LINKS[key] = found
    return found


_TEMPLATE_MESSAGES: dict[tuple[Any, str], Markup] = {}
_TEMPLATE_TEXTS: dict[tuple[Any, str], Markup] = {}


def _template_gettext(message: str, **variables) -> Markup:
    """``_()`` in templates: what Jinja's newstyle gettext does for autoescaped templates (every
    portal template is HTML), without its two context-passing wrappers per call, and each
    literal message looked up once per language (templates pass only literals)."""
    key = (_translations(), message)
    if variables:
        found = _TEMPLATE_MESSAGES.get(key)
        if found is None:
            found = _TEMPLATE_MESSAGES[key] = _catalogue_markup(key[0].ugettext(message))
        return found % variables
    found = _TEMPLATE_TEXTS.get(key)
    if found is None:
        found = _TEMPLATE_TEXTS[key] = _catalogue_markup(key[0].ugettext(message)) % {}
    return found


def _template_ngettext(singular: str, plural: str, num: int, **variables) -> Markup:
    return _catalogue_markup(_translations().ungettext(singular, plural, num)) % {"num": num, **variables}


def _date(value: str | None, with_time: bool = False) -> str:
    """An ISO date or time as Vietnamese readers write it (dd/mm/yyyy, local time)."""
    if not value:
        return ""
    try:
        if "T" in str(value):
            moment = dt.datetime.fromisoformat(str(value)).astimezone(LOCAL_TZ)
            return moment.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")
        return dt.date.fromisoformat(str(value)).strftime("%d/%m/%Y")
    except ValueError:
        return str(value)


def _money(value) -> str:
    try:
        return f"{int(value):,}".replace(",", ".") + " đ"
    except (TypeError, ValueError):
        return str(value)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site (no scheme, no host, no '//'), so sign-in cannot redirect away."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),
        MAX_CONTENT_LENGTH=settings.max_upload_bytes * 6 + 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_TRANSLATION_DIRECTORIES=translations_dir(),
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.session_interface = session_store(settings.session_ttl, settings.session_database_url)
    app.extensions["portal.settings"] = settings
    app.extensions["portal.gateway"] = Gateway(settings.gateway_url, settings.timeout)
    Babel(app, locale_selector=_select_locale)
    # Templates call _() dozens of times a page: look the catalogue up once per request.
    app.jinja_env.install_gettext_callables(_fast_gettext, _fast_ngettext, newstyle=True)
    app.jinja_env.globals.update(_=_template_gettext, gettext=_template_gettext, ngettext=_template_ngettext,
                                 url_for=_template_url_for)
    app.jinja_env.filters.update(date=_date, datetime=lambda v: _date(v, True), money=_money)
    app.jinja_env.globals.update(csrf_token=csrf_token, labels=labels, settings=settings)
    app.jinja_env.add_extension("jinja2.ext.do")

    @app.before_request
    def _before():
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID") or secrets.token_hex(8)
        if request.path not in ("/health", "/ready"):
            refuse_without_store()
        check_csrf()

    @app.after_request
    def _after(response):
        response.headers.setdefault("X-Request-ID", g.get("request_id", ""))
        if request.path not in ("/health", "/ready") and not request.path.startswith("/static/"):
            # One JSON line per page, like the services' logs; never the query string or a form
            # (they carry what people typed), only the path, the status and the time.
            ACCESS_LOG.info(json.dumps({"service": "portal", "request_id": g.get("request_id"),
                                        "method": request.method, "path": request.path[:200],
                                        "status": response.status_code,
                                        "ms": round((time.perf_counter() - g.get("started", 0)) * 1000, 1),
                                        "api_ms": round(g.get("api_ms", 0.0), 1)}))
        return security_headers(response)

    @app.context_processor
    def _context():
        return {"lang": str(get_locale() or "vi"), "user": session.get("user"), "officer": session.get("officer"),
                "path": request.full_path.rstrip("?")}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        gateway: Gateway = app.extensions["portal.gateway"]
        try:
            resp = gateway.raw("GET", "/ready")
        except ApiError:
            return {"status": "unavailable", "gateway": "unreachable"}, 503
        ok = resp.status_code == 200
        return {"status": "ok" if ok else "unavailable", "gateway": resp.status_code}, 200 if ok else 503

    @app.get("/ngon-ngu/<lang>")
    def switch_language(lang: str):
        if lang in LANGUAGES:
            session["lang"] = lang
        return redirect(safe_next(request.args.get("next")))

    @app.errorhandler(SessionStoreUnavailable)
    def _sessions_down(err: SessionStoreUnavailable):
        response = app.make_response((render_template(
            "error.html", title=_("Service unavailable"),
            message=_("The service is temporarily unavailable. Please try again later.")), 503))
        response.headers["Retry-After"] = "30"
        return security_headers(response)

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        if err.status == 401:
            if request.blueprint == "desk":
                session.pop("officer", None)
                session.pop("officer_tokens", None)
                return redirect(url_for("desk.sign_in"))
            session.pop("user", None)
            session.pop("tokens", None)
            return redirect(url_for("account.sign_in", next=request.full_path.rstrip("?")))
        if err.status == 429:
            return render_template("error.html", title=_("Too many requests"),
                                   message=_("You have sent too many requests. Please wait a moment and try again."),
                                   retry_after=err.retry_after), 429
        if err.status == 404:
            return render_template("error.html", title=_("Not found"),
                                   message=_("We could not find what you asked for.")), 404
        if err.status >= 500:
            return render_template("error.html", title=_("Service unavailable"),
                                   message=_("The service is temporarily unavailable. Please try again later.")), 503
        return render_template("error.html", title=_("Request refused"),
                               message=err.message(str(get_locale()))), err.status

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        status = err.code or 500
        if status == 400 and err.description == "csrf":
            title, message = _("Form expired"), _(
                "This form has expired or was not sent from this site. Please go back, reload the page and try again.")
        elif status == 404:
            title, message = _("Not found"), _("We could not find what you asked for.")
        elif status == 413:
            title, message = _("File too large"), _(
                "The files you sent are too large. Each document may be at most %(size)s MB.",
                size=settings.max_upload_bytes // (1024 * 1024))
        elif status == 405:
            title, message = _("Not allowed"), _("This page cannot be used that way.")
        else:
            title, message = _("Request refused"), _("The request is not valid.")
        return render_template("error.html", title=title, message=message), status

    from portal.views import account, catalog, desk, dossiers, filing

    for module in (catalog, account, filing, dossiers, desk):
        app.register_blueprint(module.bp)
    return app
