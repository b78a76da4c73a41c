"""``@api(...)``: the one way to declare a gateway endpoint.

An endpoint states its method, path, marshmallow schemas (query, body, response), who may
call it and which rate-limit budget it spends. The entrypoint does the rest before the
handler runs (authenticate, authorise, rate-limit, validate, listing every bad field) and
after (serialise with the response schema, status, headers), and turns every exception into
a problem response: a ``ServiceError`` from any service keeps its code and gets the status of
its type (``problems.HTTP_STATUS``); anything unexpected becomes a 500 with the request id
and nothing else.

Handlers take ``(self, call, **path_values)`` and return a JSON-able body, or
``(status, body)``, or ``(status, body, headers)``, or a werkzeug ``Response``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eventlet.event import Event
from marshmallow import EXCLUDE, Schema, ValidationError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import Counter, Histogram
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from gateway.http.auth import Principal
from gateway.http.json_body import read_json
from gateway.http.problems import UnsupportedMediaType, field_errors, http_status, problem
from gateway.http.server import GatewayServer, client_address, request_id_of
from gateway.http.tokens import TokenKeys
from portal_common import logs
from portal_common.entrypoints import BROKER_GONE
from portal_common.errors import Forbidden as ForbiddenError
from portal_common.errors import ServiceError, TooManyRequests, Unauthorized, Unavailable

log = logging.getLogger(__name__)

REQUESTS = Counter("gateway_http_requests_total", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("gateway_http_request_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

PUBLIC = None  # auth=PUBLIC: anyone; auth=("citizen", ...): those roles only


@dataclass
class ApiCall:
    """What a handler gets: the validated input and who is calling."""

    request: Request
    request_id: str
    principal: Principal | None
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None

    @property
    def client(self) -> str:
        return client_address(self.request.environ)

    def context(self) -> dict[str, Any]:
        """The caller as services want it in RPC arguments (for events' actor metadata)."""
        p = self.principal
        return {
            "request_id": self.request_id,
            "client_ip": self.client,
            "actor": None if p is None else {
                "kind": p.role, "id": p.account_id, "agency_code": p.agency_code,
                "subject": p.subject,
                # the VNeID assurance level of the caller's session, when it began with VNeID
                **({"assurance_level": p.claims["acr"]} if p.claims.get("acr") else {}),
            },
        }


def raw_body(call: ApiCall) -> dict:
    """The JSON body as sent, for a route that passes it on whole: the service validates it
    again with the same shared schema and owns every decision."""
    return call.request.get_json(silent=True) or {}


def _schema(value: type[Schema] | Schema | None, many: bool = False) -> Schema | None:
    if value is None:
        return None
    return value(many=many) if isinstance(value, type) else value


class ApiRoute(HttpRequestHandler):
    server = GatewayServer()
    keys = TokenKeys()

    def __init__(
        self,
        method: str,
        url: str,
        *,
        summary: str,
        tags: tuple[str, ...] = (),
        query: type[Schema] | Schema | None = None,
        body: type[Schema] | Schema | None = None,
        response: type[Schema] | Schema | None = None,
        many: bool = False,
        status: int = 200,
        auth: tuple[str, ...] | None = PUBLIC,
        optional_auth: bool = False,
        rate_limit: str | None = None,
        responses: dict[int, str] | None = None,
        raw_body: bool = False,
        content_type: str = "application/json",
        description: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(method, url, **kwargs)
        self.summary = summary
        self.tags = tags
        self.query_schema = _schema(query)
        self.body_schema = _schema(body)
        self.response_schema = _schema(response, many=many)
        self.status = status
        self.auth = auth
        self.optional_auth = optional_auth
        self.rate_limit = rate_limit
        self.responses = responses or {}
        self.raw_body = raw_body
        self.content_type = content_type
        self.description = description

    # -- before the handler ------------------------------------------------------------

    def _principal(self, request: Request) -> Principal | None:
        header = request.headers.get("Authorization")
        if self.auth is PUBLIC and not (self.optional_auth and header):
            return None
        principal = self.keys.authenticate(header)
        if self.auth is not PUBLIC and principal.role not in self.auth:
            raise ForbiddenError("forbidden", "This endpoint is not open to your role.")
        return principal

    def _query(self, request: Request) -> dict[str, Any]:
        if self.query_schema is None:
            return {}
        raw = {k: (v if len(v) > 1 else v[0]) for k, v in request.args.lists()}
        for key, value in raw.items():
            if any(ord(ch) < 32 for ch in (value if isinstance(value, str) else "".join(value))):
                raise ValidationError({key: ["Control characters are not allowed."]})
        return self.query_schema.load(raw, unknown=EXCLUDE)

    def _body(self, request: Request) -> Any:
        if self.raw_body or self.body_schema is None:
            return None
        if request.mimetype != "application/json":
            raise UnsupportedMediaType("unsupported_media_type", "Send the body as application/json.")
        payload = read_json(request)  # 400 invalid_json / json_too_deep, 422 for unacceptable values
        if payload is None:
            payload = {}
        return self.body_schema.load(payload)

    # -- the request -------------------------------------------------------------------

    def handle_request(self, request: Request) -> Response:
        request.shallow = False
        started = time.perf_counter()
        rid = request_id_of(request.environ)
        logs.clear()
        logs.bind(service="gateway", request_id=rid, dossier_code=_dossier_code(self.url, request.path_values))
        try:
            if self.rate_limit:
                self._spend(client_address(request.environ))
            call = ApiCall(request, rid, self._principal(request), self._query(request),
                           self._body(request))
            if self.rate_limit:
                account = _account_of(call)
                if account:
                    self._spend(account, ":account")
            context_data = self.server.context_data_from_headers(request)
            event = Event()
            self.container.spawn_worker(
                self, (call,), request.path_values, context_data=context_data,
                handle_result=partial(self.handle_result, event),
            )
            response = self.render(event.wait())
        except Exception as exc:  # every failure becomes a problem response
            response = self.response_from_exception(exc, rid)
        seconds = time.perf_counter() - started
        REQUESTS.labels(self.method, self.url, str(response.status_code)).inc()
        LATENCY.labels(self.method, self.url).observe(seconds)
        log.info("%s %s %s", self.method, request.path[:200], response.status_code,
                 extra={"route": self.url, "status": response.status_code, "duration_ms": round(seconds * 1000, 2)})
        return response

    def _spend(self, client: str, scope: str = "") -> None:
        """Count one request of ``client`` (an address, or an account with ``scope=":account"``)."""
        wait = self.server.limiter.check(self.rate_limit + scope, client)
        if wait is not None:
            raise TooManyRequests("rate_limited", "Too many requests; retry later.",
                                  {"retry_after": int(wait + 0.999)})

    def render(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        status, headers = self.status, None
        if isinstance(result, tuple):
            status, result, *rest = result
            headers = rest[0] if rest else None
        if status == 204:
            return Response(status=204, headers=headers)
        if self.response_schema is not None:
            result = self.response_schema.dump(result)
        return Response(json.dumps(result, ensure_ascii=False, default=str), status=status,
                        headers=headers, mimetype="application/json")

    def response_from_exception(self, exc: BaseException, rid: str | None = None) -> Response:
        if isinstance(exc, ValidationError):
            return problem(422, "validation_failed", "Some fields are not valid.", request_id=rid,
                           errors=field_errors(exc.messages))
        if isinstance(exc, ServiceError):
            headers = {}
            if isinstance(exc, TooManyRequests | Unavailable):
                default = 60 if isinstance(exc, TooManyRequests) else 5
                retry = (exc.details or {}).get("retry_after", default) if isinstance(exc.details, dict) else default
                headers["Retry-After"] = str(retry)
            if isinstance(exc, Unauthorized):
                headers["WWW-Authenticate"] = 'Bearer realm="portal"'
            errors = exc.details if isinstance(exc.details, list) else None
            return _service_problem(exc, rid, headers, errors)
        if isinstance(exc, RequestEntityTooLarge):
            return problem(413, "payload_too_large", request_id=rid)
        if isinstance(exc, HTTPException):
            return problem(exc.code or 400, "bad_request", exc.description, request_id=rid)
        if isinstance(exc, (RpcTimeout, UnknownService, *BROKER_GONE)):
            log.error("dependency unavailable: %r", exc)
            return problem(503, "service_unavailable", request_id=rid, headers={"Retry-After": "5"})
        if isinstance(exc, RemoteError):
            log.error("remote failure %s: %s", exc.exc_type, exc.value)
        else:
            log.exception("unhandled error in %s %s", self.method, self.url)
        return problem(500, "internal_error", request_id=rid)


def _service_problem(exc: ServiceError, rid, headers, errors) -> Response:
    extra = exc.details if isinstance(exc.details, dict) else None
    status = http_status(exc)
    if extra and status == 422 and errors is None and "message_vi" not in extra:
        errors, extra = field_errors(extra), None  # a service's marshmallow messages: every bad field
    vi = extra.get("message_vi") if extra and isinstance(extra.get("message_vi"), str) else None
    response = problem(status, exc.code, exc.message, request_id=rid, errors=errors,
                       headers=headers or None, message_vi=vi)
    if extra:
        body = json.loads(response.get_data())
        body.update({k: v for k, v in extra.items() if k not in body})
        response.set_data(json.dumps(body, ensure_ascii=False, default=str))
    return response


# Body fields that name the account a signed-out request is about (sign-in, registration,
# one-time codes): the per-account budget counts them, whatever address they come from.
ACCOUNT_FIELDS = ("cccd", "phone", "bhxh_code", "tax_code", "login_id", "registration_id", "challenge_id")


def _account_of(call: ApiCall) -> str | None:
    """The account a rate-limited request spends: the signed-in one, else the one it names."""
    if call.principal is not None:
        return call.principal.account_id
    if isinstance(call.body, dict):
        for name in ACCOUNT_FIELDS:
            value = call.body.get(name)
            if isinstance(value, str | int) and str(value):
                return f"{name}:{str(value)[:128]}"
    return None


def _dossier_code(url: str, values: dict[str, Any] | None) -> str | None:
    """The dossier code in a dossier path, for the request's log lines."""
    code = (values or {}).get("code")
    if isinstance(code, str) and ("/dossiers/" in url or "/lookup/" in url):
        return code[:64]
    return None


api = ApiRoute.decorator
