"""The integrators' pages: Swagger UI over ``/openapi.json`` at ``/docs``, the AsyncAPI viewer
over ``/asyncapi.json`` at ``/docs/events``, and their files at ``/docs/assets/<name>``.

Nothing comes from a CDN. Swagger UI is the PyPI package ``swagger-ui-bundle`` (a dependency
of the project); the AsyncAPI viewer is the npm package ``@asyncapi/react-component``, put in
``DOCS_ASSETS_DIR`` (default ``.assets/docs/``) by ``deploy/docs_assets.py`` with a pinned
integrity. Only the files named in ``ASSETS`` are served, looked up by name in a table, so no
path a caller writes ever reaches the file system. Their URLs carry a content hash, so they are
cached for a year and a new version is a new URL.

Each page has its own Content-Security-Policy, the tightest its viewer works under: scripts
only from this origin and never inline (the initialisers are ``docs_static/*.js``). Without
JavaScript each page still lists every operation or event, from the same documents.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

import swagger_ui_bundle
from werkzeug.wrappers import Request, Response

from portal_common import config

REPO = Path(__file__).resolve().parents[2]
STATIC = Path(__file__).resolve().parent / "docs_static"
SWAGGER = Path(swagger_ui_bundle.swagger_ui_path)
INSTALL_HOW_TO = "make docs-assets"


def assets_dir() -> Path:
    """Where ``deploy/docs_assets.py`` put the AsyncAPI viewer (read per call: tests move it)."""
    return Path(config.env("DOCS_ASSETS_DIR", str(REPO / ".assets" / "docs"), "gateway") or "")


# Shared by both pages. No form posts anywhere ('none'), no plugins, no <base>, never framed;
# images are this origin's and the data: URIs of the viewers' style sheets (icons).
_COMMON = ("default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Swagger UI runs under script-src 'self' and style-src 'self'. Its React code sets styles
# through the DOM (element.style), which CSP does not govern, so no 'unsafe-inline' is needed.
SWAGGER_CSP = f"{_COMMON}; script-src 'self'; style-src 'self'"
# The AsyncAPI viewer parses and validates the document in the browser with the AsyncAPI parser,
# whose JSON-schema validator (ajv) compiles each schema into a function with `new Function`:
# without 'unsafe-eval' the page stays blank. This page alone gets it; it loads no script but
# this origin's (script-src 'self', nothing inline), and fetches only /asyncapi.json.
ASYNCAPI_CSP = f"{_COMMON}; script-src 'self' 'unsafe-eval'; style-src 'self'"
# The page saying the viewer is not installed, and the no-JavaScript lists: no script at all.
PLAIN_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " \
            "frame-ancestors 'none'"

LONG_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    folder: str  # "swagger", "static" or "installed" (see _folder)
    file: str
    content_type: str


# The whitelist: URL name -> file. Nothing else under /docs/assets/ exists.
ASSETS: dict[str, Asset] = {
    "swagger-ui-bundle.js": Asset("swagger", "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": Asset("swagger", "swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": Asset("swagger", "favicon-32x32.png", "image/png"),
    "swagger-init.js": Asset("static", "swagger-init.js", "text/javascript; charset=utf-8"),
    "asyncapi-init.js": Asset("static", "asyncapi-init.js", "text/javascript; charset=utf-8"),
    "docs.css": Asset("static", "docs.css", "text/css; charset=utf-8"),
    "asyncapi-standalone.js": Asset("installed", "asyncapi-standalone.js", "text/javascript; charset=utf-8"),
    "asyncapi-default.min.css": Asset("installed", "asyncapi-default.min.css", "text/css; charset=utf-8"),
}
# What /docs/events needs from DOCS_ASSETS_DIR.
INSTALLED = tuple(name for name, a in ASSETS.items() if a.folder == "installed")


def _folder(asset: Asset) -> Path:
    return {"swagger": SWAGGER, "static": STATIC}.get(asset.folder) or assets_dir()


@dataclass(frozen=True)
class Loaded:
    body: bytes
    gzipped: bytes | None
    digest: str  # sha256 hex: the ETag and the URL's ?v=
    path: Path
    mtime: float


_loaded: dict[str, Loaded] = {}


def load(name: str) -> Loaded | None:
    """The whitelisted file ``name``, read once (again if it changed on disk); None when it is
    not whitelisted or not on disk."""
    asset = ASSETS.get(name)
    if asset is None:
        return None
    path = _folder(asset) / asset.file
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _loaded.get(name)
    if cached is not None and cached.path == path and cached.mtime == mtime:
        return cached
    try:
        body = path.read_bytes()
    except OSError:
        return None
    packed = gzip.compress(body, 6, mtime=0) if not asset.content_type.startswith("image/") else None
    loaded = Loaded(body, packed if packed and len(packed) < len(body) else None,
                    hashlib.sha256(body).hexdigest(), path, mtime)
    _loaded[name] = loaded
    return loaded


def installed() -> bool:
    """The AsyncAPI viewer's files are in DOCS_ASSETS_DIR."""
    return all(load(name) is not None for name in INSTALLED)


def asset_response(request: Request, name: str) -> Response | None:
    """A whitelisted file with long cache headers (gzip when the client takes it); None if
    ``name`` is not one (or not installed)."""
    loaded = load(name)
    if loaded is None:
        return None
    asset = ASSETS[name]
    headers = {"Cache-Control": LONG_CACHE, "Vary": "Accept-Encoding"}
    body = loaded.body
    if loaded.gzipped is not None and "gzip" in request.accept_encodings:
        body, headers["Content-Encoding"] = loaded.gzipped, "gzip"
    response = Response(body, headers=headers, content_type=asset.content_type)
    response.set_etag(loaded.digest + ("-gz" if "Content-Encoding" in headers else ""))
    return response.make_conditional(request)


def _url(name: str) -> str:
    loaded = load(name)
    version = f"?v={loaded.digest[:16]}" if loaded is not None else ""
    return f"/docs/assets/{name}{version}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _head(title: str, styles: tuple[str, ...], scripts: tuple[str, ...]) -> str:
    links = "".join(f'<link rel="stylesheet" href="{_e(_url(s))}">' for s in styles)
    tags = "".join(f'<script src="{_e(_url(s))}" defer></script>' for s in scripts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        f'<link rel="icon" type="image/png" href="{_e(_url("favicon-32x32.png"))}">{links}{tags}</head><body>'
    )


def _header(heading: str, current: str) -> str:
    links = (("/docs", "HTTP API"), ("/docs/events", "Events"), ("/openapi.json", "openapi.json"),
             ("/asyncapi.json", "asyncapi.json"))
    items = "".join(
        f'<li><a href="{href}"{" aria-current=page" if href == current else ""}>{_e(text)}</a></li>'
        for href, text in links
    )
    return (f'<header class="docs-header"><h1>{_e(heading)}</h1>'
            f'<nav aria-label="API documents"><ul>{items}</ul></nav></header>')


def operations(spec: dict) -> list[tuple[str, str, str]]:
    """(METHOD, path, summary) of every operation of an OpenAPI document, by path."""
    out = []
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            if isinstance(op, dict) and "responses" in op:
                out.append((method.upper(), path, op.get("summary", "")))
    return out


def events(doc: dict) -> list[tuple[str, str, str, str]]:
    """(routing key, event name, version, summary) of every message of an AsyncAPI document."""
    messages = doc.get("components", {}).get("messages", {})
    out = []
    for key, channel in sorted(doc.get("channels", {}).items()):
        for op in ("subscribe", "publish"):
            for ref in channel.get(op, {}).get("message", {}).get("oneOf", []):
                msg = messages.get(ref.get("$ref", "").rsplit("/", 1)[-1], {})
                out.append((key, msg.get("name", ""), str(msg.get("x-schema-version", "")),
                            msg.get("summary") or msg.get("title", "")))
    return out


def _operations_table(spec: dict) -> str:
    rows = "".join(
        f'<tr><td class="method">{_e(m)}</td><td><code>{_e(p)}</code></td><td>{_e(s)}</td></tr>'
        for m, p, s in operations(spec)
    )
    return ('<table><caption>Every operation of <a href="/openapi.json">/openapi.json</a></caption>'
            '<thead><tr><th scope="col">Method</th><th scope="col">Path</th><th scope="col">Summary</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def _events_table(doc: dict) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(k)}</code></td><td>{_e(n)}</td><td>{_e(v)}</td><td>{_e(s)}</td></tr>"
        for k, n, v, s in events(doc)
    )
    return ('<table><caption>Every event of <a href="/asyncapi.json">/asyncapi.json</a></caption>'
            '<thead><tr><th scope="col">Routing key</th><th scope="col">Event</th><th scope="col">Version</th>'
            f'<th scope="col">Summary</th></tr></thead><tbody>{rows}</tbody></table>')


def _title(doc: dict) -> str:
    info = doc.get("info", {})
    return f"{info.get('title', '')} {info.get('version', '')}".strip()


def swagger_page(spec: dict) -> Response:
    """``/docs``: Swagger UI, and every operation for a browser without JavaScript."""
    return _viewer_page(f"{_title(spec)}: HTTP API", "/docs", ("swagger-ui.css", "docs.css"),
                        ("swagger-ui-bundle.js", "swagger-init.js"), "swagger-ui", "/openapi.json",
                        "The list of operations follows; each one's parameters, bodies and answers are in "
                        '<a href="/openapi.json">/openapi.json</a>.</p>' + _operations_table(spec), SWAGGER_CSP)


def _viewer_page(heading: str, path: str, css: tuple[str, ...], js: tuple[str, ...], viewer_id: str,
                 spec_url: str, fallback: str, csp: str) -> Response:
    """A reference page: the element the viewer's script fills from ``spec_url``, and ``fallback``
    (the text after the no-JavaScript note, with its table) for a browser without JavaScript."""
    body = (
        _head(f"{heading} reference", css, js)
        + _header(heading, path)
        + f'<main><div id="{viewer_id}" data-spec="{spec_url}"></div>'
        + '<noscript><div class="docs-fallback"><p>The interactive reference needs JavaScript. '
        + fallback + "</div></noscript>"
        + "</main></body></html>"
    )
    return Response(body, mimetype="text/html", headers={"Content-Security-Policy": csp})


def events_page(doc: dict) -> Response:
    """``/docs/events``: the AsyncAPI viewer, or a 503 saying how to install it."""
    title = _title(doc)
    if not installed():
        body = (
            _head(f"{title}: events (viewer not installed)", ("docs.css",), ())
            + _header(f"{title}: events", "/docs/events")
            + '<main class="docs-missing"><h2>The events viewer is not installed on this server</h2>'
            f"<p>Its files (the npm package <code>@asyncapi/react-component</code>) are not in "
            f"<code>{_e(assets_dir().name)}/</code>. Install them with <code>{INSTALL_HOW_TO}</code> "
            "(or <code>python -m deploy.docs_assets</code>), then reload this page.</p>"
            '<p>The document itself is at <a href="/asyncapi.json">/asyncapi.json</a>.</p>'
            '<div class="docs-fallback">' + _events_table(doc) + "</div></main></body></html>"
        )
        return Response(body, status=503, mimetype="text/html",
                        headers={"Content-Security-Policy": PLAIN_CSP, "Retry-After": "3600"})
    return _viewer_page(f"{title}: events", "/docs/events", ("asyncapi-default.min.css", "docs.css"),
                        ("asyncapi-standalone.js", "asyncapi-init.js"), "asyncapi", "/asyncapi.json",
                        "The list of events follows; their payloads are in "
                        '<a href="/asyncapi.json">/asyncapi.json</a>.</p>' + _events_table(doc), ASYNCAPI_CSP)
