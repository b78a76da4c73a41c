"""Operations endpoints: health, readiness, metrics, the OpenAPI and AsyncAPI documents, the docs pages
(Swagger UI, the AsyncAPI viewer and their files: ``gateway.http.docs_pages``), and the operators'
view of a dossier's access log."""

from __future__ import annotations

import json

import eventlet
from marshmallow import Schema, fields
from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from gateway.http import docs_pages
from gateway.http.asyncapi import build_asyncapi
from gateway.http.openapi import build_spec
from gateway.http.route import ApiCall, ApiRoute, api
from gateway.routes.dossiers import AccessEntry, AccessLogPage
from portal_common.config import instance_id
from portal_common.contracts.dossier import AccessLogQuerySchema
from portal_common.errors import NotFound

SERVICES = ("identity", "catalog", "dossier", "router", "payment")
OPERATOR = ("operator",)


class HealthOut(Schema):
    status = fields.String(required=True)
    service = fields.String(required=True)
    instance = fields.String(metadata={"description": "which of the gateway's processes answered"})


class ReadyOut(Schema):
    status = fields.String(required=True, metadata={"description": "ready or not_ready"})
    services = fields.Dict(required=True, metadata={"description": "each service's health check"})


class OperatorAccessEntry(AccessEntry):
    id = fields.Integer(required=True, metadata={"description": "the log row"})
    account_id = fields.String(required=True, metadata={"description": "the staff account that read"})
    request_id = fields.String(allow_none=True, metadata={"description": "the gateway request (logs)"})


class OperatorAccessLogPage(AccessLogPage):
    """The access-log page, its entries with who read and the request."""

    items = fields.List(fields.Nested(OperatorAccessEntry), required=True)


class RouteTable(DependencyProvider):
    """Gives a worker the gateway's ``@api`` routes (to document them)."""

    def get_dependency(self, worker_ctx):
        return [e for e in self.container.entrypoints if isinstance(e, ApiRoute)]


class OpsRoutes:
    _openapi_cache: dict | None = None
    _asyncapi_cache: dict | None = None
    api_routes = RouteTable()

    @api("GET", "/health", summary="Liveness: the gateway process answers", tags=("ops",), response=HealthOut)
    def health(self, call: ApiCall):
        return {"status": "ok", "service": "gateway", "instance": instance_id()}

    @api("GET", "/ready", summary="Readiness: broker, databases and every service answer, and the gateway "
         "has loaded identity's revocations",
         tags=("ops",), response=ReadyOut, responses={503: ("Not ready", ReadyOut)})
    def ready(self, call: ApiCall):
        checks = {}
        pool = eventlet.GreenPool()

        def probe(name: str):
            try:
                with eventlet.Timeout(3):
                    return name, getattr(self, f"{name}_rpc").health()
            except BaseException as exc:
                return name, {"status": "down", "error": type(exc).__name__}

        for name, result in pool.imap(probe, SERVICES):
            checks[name] = result
        # the gateway itself: it answers signed-in requests only once it knows what was revoked
        loaded = self.revocation_feed.loaded()
        checks["gateway"] = {"status": "ok" if loaded else "starting", "revocations_loaded": loaded,
                             "instance": instance_id()}
        ok = all(c.get("status") == "ok" for c in checks.values())
        return (200 if ok else 503), {"status": "ready" if ok else "not_ready", "services": checks}

    @api("GET", "/metrics", summary="Prometheus metrics of the gateway", tags=("ops",),
         content_type=CONTENT_TYPE_LATEST)
    def metrics(self, call: ApiCall):
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    @api("GET", "/openapi.json", summary="This API's OpenAPI 3 document", tags=("ops",))
    def openapi(self, call: ApiCall):
        return Response(json.dumps(self._spec(), ensure_ascii=False), mimetype="application/json")

    @api("GET", "/asyncapi.json", summary="The AsyncAPI document of every published event", tags=("ops",),
         description="Generated from the event catalogue: one channel per routing key, one message per version.")
    def asyncapi(self, call: ApiCall):
        return Response(json.dumps(self._asyncapi(), ensure_ascii=False), mimetype="application/json")

    @api("GET", "/docs", summary="Browsable API documentation: Swagger UI over /openapi.json", tags=("ops",),
         content_type="text/html",
         description="Without JavaScript the page lists every operation (method, path, summary).")
    def docs(self, call: ApiCall):
        return docs_pages.swagger_page(self._spec())

    @api("GET", "/docs/events", summary="Browsable event documentation: the AsyncAPI viewer over /asyncapi.json",
         tags=("ops",), content_type="text/html",
         responses={503: ("The viewer's files are not installed here (make docs-assets); the page says so "
                          "and lists the events", {"type": "string"}, "text/html")},
         description="Without JavaScript the page lists every event (routing key, name, version).")
    def docs_events(self, call: ApiCall):
        return docs_pages.events_page(self._asyncapi())

    @api("GET", "/docs/assets/<name>", summary="A file of the docs pages (scripts, styles), cached for a year",
         tags=("ops",), content_type="*/*",
         description="Only the files the pages name; any other name is a 404.")
    def docs_asset(self, call: ApiCall, name: str):
        response = docs_pages.asset_response(call.request, name)
        if response is None:
            raise NotFound("not_found", "No such file.")
        return response

    @api("GET", "/api/v1/ops/dossiers/<code>/access-log", summary="Who read a dossier: staff account ids, "
         "agencies, request ids, newest first", tags=("ops",), query=AccessLogQuerySchema,
         response=OperatorAccessLogPage, auth=OPERATOR,
         description="To trace an applicant's complaint: the owner sees the same rows with `staff_ref` only.")
    def dossier_access_log(self, call: ApiCall, code: str):
        q = call.query
        return self.dossier_rpc.operator_access_log(call.context(), code, q["page"], q["page_size"])

    def _spec(self) -> dict:
        cls = type(self)
        if cls._openapi_cache is None:
            cls._openapi_cache = build_spec(self.api_routes)
        return cls._openapi_cache

    def _asyncapi(self) -> dict:
        cls = type(self)
        if cls._asyncapi_cache is None:
            cls._asyncapi_cache = build_asyncapi()
        return cls._asyncapi_cache

