"""The gateway's web server: nameko's, with the rules every response follows.

Around every request: a request id (``X-Request-ID`` taken when sane, made otherwise) echoed
on the response; unknown paths and methods answered as problems, not HTML; a body-size cap
(a declared ``Content-Length`` over it, or a chunked body read past it: 413); CORS for the
configured portal origin; security headers (a response may set its own Content-Security-Policy
and Cache-Control: the docs pages do, ``gateway.http.docs_pages``).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import uuid

import eventlet
from nameko.messaging import QueueConsumer
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Response

from gateway.http.json_body import GatewayRequest
from gateway.http.limits import MAX_BODY_BYTES, MAX_QUERY_BYTES, RateLimiter
from gateway.http.problems import problem
from portal_common import config

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-site",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def request_id_of(environ: dict) -> str:
    """The caller's request id when it is sane, otherwise a fresh one (stored in environ)."""
    rid = environ.get("portal.request_id")
    if rid:
        return rid
    given = environ.get("HTTP_X_REQUEST_ID", "")
    rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    environ["portal.request_id"] = rid
    return rid


def _networks(raw: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for item in (raw or "").split(","):
        with contextlib.suppress(ValueError):
            if item.strip():
                out.append(ipaddress.ip_network(item.strip(), strict=False))
    return out


# Connections waiting to be accepted: eventlet's default of 50 resets clients under a burst.
LISTEN_BACKLOG = config.env_int("LISTEN_BACKLOG", 1024, "gateway")
# The longest request line read: past eventlet's 8 kB, so an over-long query string still gets
# the gateway's own 414 problem (MAX_QUERY_BYTES) rather than the HTTP server's plain-text one.
MAX_REQUEST_LINE = config.env_int("MAX_REQUEST_LINE", 64 * 1024, "gateway")

TRUSTED_PROXIES = _networks(config.env("TRUSTED_PROXIES", "", "gateway"))


def _trusted(address: str, trusted: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(environ: dict, trusted: list | None = None) -> str:
    """The caller's address for rate limits and logs.

    ``X-Forwarded-For`` counts only when the connection comes from a proxy named in
    ``TRUSTED_PROXIES`` (addresses or networks); then the right-most address that is not itself
    a trusted proxy is the client. Anyone else could write any address there.
    """
    trusted = TRUSTED_PROXIES if trusted is None else trusted
    remote = environ.get("REMOTE_ADDR") or "unknown"
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    if not forwarded or not _trusted(remote, trusted):
        return remote
    for hop in reversed([h.strip() for h in forwarded.split(",")][-20:]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed chain: trust nothing in it
        if not _trusted(hop, trusted):
            return hop
    return remote


class GatewayWsgiApp(WsgiApp):
    """Routes a request to its entrypoint; everything outside the routes is a problem."""

    def __init__(self, server: GatewayServer):
        super().__init__(server)
        self.cors_origins = {
            o.strip() for o in (config.env("CORS_ORIGINS", "http://localhost:3000", "gateway") or "").split(",")
            if o.strip()
        }

    def _cors(self, environ: dict, response: Response) -> None:
        origin = environ.get("HTTP_ORIGIN")
        if origin and ("*" in self.cors_origins or origin in self.cors_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.vary.add("Origin")  # beside Accept-Encoding on the docs' files
            response.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After, Location"

    def _preflight(self, environ: dict) -> Response:
        response = Response(status=204)
        self._cors(environ, response)
        if "Access-Control-Allow-Origin" in response.headers:
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    def __call__(self, environ, start_response):
        rid = request_id_of(environ)
        if environ["REQUEST_METHOD"] == "OPTIONS" and environ.get("HTTP_ORIGIN"):
            response = self._preflight(environ)
        elif len(environ.get("QUERY_STRING", "")) > MAX_QUERY_BYTES:
            response = problem(414, "query_too_long", f"The query string is longer than {MAX_QUERY_BYTES} bytes.",
                               request_id=rid)
        elif _content_length(environ) > MAX_BODY_BYTES:
            response = problem(413, "payload_too_large", request_id=rid)
        elif (refusal := _buffer_chunked(environ, rid)) is not None:
            response = refusal
        else:
            request = GatewayRequest(environ, shallow=True)
            request.max_content_length = MAX_BODY_BYTES
            adapter = self.url_map.bind_to_environ(environ)
            try:
                provider, values = adapter.match()
                request.path_values = values
                response = provider.handle_request(request)
            except MethodNotAllowed as exc:
                allowed = ", ".join(sorted(exc.valid_methods or []))
                response = problem(405, "method_not_allowed", request_id=rid,
                                   headers={"Allow": allowed} if allowed else None)
            except NotFound:
                response = problem(404, "not_found", "No such endpoint.", request_id=rid)
            except HTTPException as exc:
                response = problem(exc.code or 400, "bad_request", exc.description, request_id=rid)
        response.headers["X-Request-ID"] = rid
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        self._cors(environ, response)
        return response(environ, start_response)


def _content_length(environ: dict) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


CHUNK_READ_BYTES = 256 * 1024


def _buffer_chunked(environ: dict, rid: str) -> Response | None:
    """Read a ``Transfer-Encoding: chunked`` body, at most ``MAX_BODY_BYTES``, into memory and
    hand it on as a body of known length; a longer one is a 413 (a malformed one a 400).

    eventlet decodes the chunks but gives no length, so werkzeug would read such a body as
    empty; nothing past the limit is kept (eventlet reads and drops the rest of the body
    before the connection takes another request, as for any body an endpoint leaves unread).
    """
    if environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower() != "chunked":
        return None  # a declared length: eventlet's input never yields more than it
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            piece = stream.read(min(CHUNK_READ_BYTES, MAX_BODY_BYTES + 1 - total))
            if not piece:
                break
            parts.append(piece)
            total += len(piece)
            if total > MAX_BODY_BYTES:
                return problem(413, "payload_too_large", request_id=rid)
    except (ValueError, OSError):  # eventlet's ChunkReadError is a ValueError
        return problem(400, "bad_request", "The chunked body is malformed.", request_id=rid)
    environ["wsgi.input"] = io.BytesIO(b"".join(parts))
    environ["CONTENT_LENGTH"] = str(total)
    del environ["HTTP_TRANSFER_ENCODING"]
    return None


class GatewayServer(WebServer):
    """nameko's web server with the gateway's WSGI app and shared limiter."""

    def __init__(self):
        super().__init__()
        self.limiter = RateLimiter()

    def start(self) -> None:
        """nameko's start, listening with the gateway's backlog, the port shared by processes,
        once RPC replies can reach this process (``_await_reply_queue``)."""
        if not self._starting:
            self._starting = True
            self._await_reply_queue()
            # SO_REUSEPORT: every gateway process listens on the one port and the kernel
            # spreads new connections over them (GATEWAY_PROCESSES, deploy/launcher.py)
            self._sock = eventlet.listen(self.bind_addr, backlog=LISTEN_BACKLOG, reuse_port=True)
            self._sock.settimeout(None)  # as nameko does: kombu issue 838
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

    def _await_reply_queue(self) -> None:
        """Wait until the container's queue consumer consumes, its RPC reply queue declared.

        nameko starts a container's extensions together: the server could listen, and a
        request send an RPC, before the reply queue was bound; the broker then drops the reply
        and the request waits out ``RPC_TIMEOUT`` for an answer already sent (the payment
        service's first settlement check, which calls the gateway as it starts, met it)."""
        for extension in self.container.extensions:
            ready = getattr(extension, "_consumers_ready", None) if isinstance(extension, QueueConsumer) else None
            if ready is not None:
                ready.wait()

    def get_wsgi_server(self, sock, wsgi_app, protocol=HttpOnlyProtocol, debug=False):
        server = super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)
        server.url_length_limit = MAX_REQUEST_LINE
        return server

    def get_wsgi_app(self):
        return GatewayWsgiApp(self)

    def context_data_from_headers(self, request):
        return {"correlation_id": request_id_of(request.environ)}

    @property
    def providers(self):
        return list(self._providers)
