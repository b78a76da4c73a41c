"""The published contracts: /openapi.json lists every endpoint the gateway serves (and the paths
of API.md), answers match their documented schemas, /docs renders it, and /asyncapi.json lists
every event of the catalogue with its routing key, exchange, versions and payload schema."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
import requests

from gateway.http.asyncapi import build_asyncapi, message_name, render_markdown, schema_name
from gateway.http.route import ApiRoute
from gateway.service import GatewayService
from portal_common.contracts import CATALOGUE
from tests.gateway.pending_paths import PENDING

# The contract lies beside the repository, in ../shared/ (as for CI); docs/API.md is its copy
# for a checkout made elsewhere, kept equal to it by a test below.
REPO = Path(__file__).resolve().parents[2]
SHARED_API_MD = REPO.parent / "shared" / "API.md"
API_MD = SHARED_API_MD if SHARED_API_MD.exists() else REPO / "docs" / "API.md"


def _routes() -> list[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every ``@api`` entrypoint declared on the gateway service."""
    out = []
    for _, method in inspect.getmembers(GatewayService, inspect.isfunction):
        for ext in getattr(method, "nameko_entrypoints", ()):
            if isinstance(ext, ApiRoute):
                out.append((ext.method.upper(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", ext.url)))
    return out


@pytest.fixture(scope="module")
def spec(gateway_url) -> dict:
    resp = requests.get(f"{gateway_url}/openapi.json", timeout=30)
    assert resp.status_code == 200
    return resp.json()


def test_every_declared_endpoint_is_in_openapi(spec):
    routes = _routes()
    assert len(routes) >= 6
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    missing = sorted(set(routes) - documented)
    assert not missing, f"endpoints missing from /openapi.json: {missing}"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (method, path)
            assert op["responses"], (method, path)
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in answer.get("content", {}) or status == "503", (
                        method, path, status)


METHODS = r"\b(?:GET|POST|PUT|PATCH|DELETE)\b"


def _contract_paths() -> list[tuple[str, str]]:
    """Method and path of every endpoint API.md fixes (query strings dropped).

    Read from the first cell of each table row; a path takes the methods written before it, or
    those of the path before it: "POST `a` then `b`", "GET `a`, GET/DELETE `b`", "GET `/health`, `/ready`".
    """
    text = API_MD.read_text(encoding="utf-8")
    out = set()
    for cell in re.findall(rf"^\|\s*({METHODS}[^|]*)\|", text, flags=re.M):
        methods: list[str] = []
        for words, path in re.findall(r"([^`]*)`([^`]+)`", cell):
            methods = re.findall(METHODS, words) or methods
            if path.startswith("/"):  # not `Idempotency-Key` of "(header `Idempotency-Key`)"
                out |= {(method, path.split("?")[0]) for method in methods}
    return sorted(out)


def test_the_repositorys_copy_of_the_contract_is_current():
    if not SHARED_API_MD.exists():
        pytest.skip("no ../shared/API.md beside this checkout to compare docs/API.md with")
    assert (REPO / "docs" / "API.md").read_text(encoding="utf-8") == SHARED_API_MD.read_text(encoding="utf-8"), (
        "docs/API.md differs from ../shared/API.md: copy it over")


def _shape(path: str) -> str:
    """A path with its parameters unnamed: their names are ours to choose, their places are not."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def _served(spec: dict, method: str, path: str) -> bool:
    """Whether /openapi.json lists ``method path`` (up to parameter names)."""
    documented = {(m.upper(), _shape(p)) for p, ops in spec["paths"].items() for m in ops}
    if (method, _shape(path)) in documented:
        return True
    if "{action}" in path:  # the agency actions may be declared one path each
        prefix = _shape(path).rsplit("/", 1)[0] + "/"
        return any(m == method and p.startswith(prefix) for m, p in documented)
    return False


def test_api_md_contract_paths_are_served_and_documented(spec):
    contract = _contract_paths()
    assert ("GET", "/api/v1/lookup/{code}") in contract and ("GET", "/asyncapi.json") in contract
    pending = {(p.method, p.path) for p in PENDING}
    missing = [f"{m} {p}" for m, p in contract if (m, p) not in pending and not _served(spec, m, p)]
    assert not missing, f"API.md endpoints not served or not in /openapi.json: {missing}"


def test_every_pending_path_is_in_api_md_once():
    """A pending entry API.md no longer names is stale: remove it (or fix its spelling)."""
    contract = set(_contract_paths())
    keys = [(p.method, p.path) for p in PENDING]
    assert len(keys) == len(set(keys)), "a pending path is listed twice"
    stale = [f"{p.method} {p.path} (issue {p.issue})" for p in PENDING if (p.method, p.path) not in contract]
    assert not stale, f"pending paths not in API.md: {stale}"


def test_no_pending_path_is_served_yet(spec):
    """The pending list only shrinks: once the gateway serves a path, take it off the list."""
    served = [f"{p.method} {p.path} (issue {p.issue})" for p in PENDING if _served(spec, p.method, p.path)]
    assert not served, f"served already, remove from tests/gateway/pending_paths.py: {served}"


def _nullable_to_json_schema(node):
    """OpenAPI 3.0's ``nullable`` as JSON Schema (``type: [t, "null"]``)."""
    if isinstance(node, dict):
        node = {k: _nullable_to_json_schema(v) for k, v in node.items()}
        if node.pop("nullable", False):
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            elif "allOf" in node or "$ref" in node:
                node = {"anyOf": [{k: v for k, v in node.items()}, {"type": "null"}]}
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        return node
    if isinstance(node, list):
        return [_nullable_to_json_schema(v) for v in node]
    return node


def conforms(spec: dict, method: str, path: str, resp: requests.Response) -> None:
    """Fail unless the answer's status, content type and body are what the document says."""
    op = spec["paths"][path][method.lower()]
    answer = op["responses"].get(str(resp.status_code))
    assert answer is not None, f"{method} {path} answered {resp.status_code}, undocumented"
    content = answer.get("content") or {}
    if not content:
        assert not resp.content
        return
    mimetype = resp.headers["Content-Type"].split(";")[0]
    assert any(mimetype == c.split(";")[0] for c in content), (mimetype, list(content))
    schema = next(v.get("schema") for c, v in content.items() if c.split(";")[0] == mimetype)
    if mimetype.endswith("json") and schema:
        full = _nullable_to_json_schema({**schema, "components": spec.get("components", {})})
        errors = [str(e) for e in jsonschema_rs.validator_for(full).iter_errors(resp.json())]
        assert not errors, f"{method} {path}: {errors[:5]}"


@pytest.mark.parametrize("path,params,status", [
    ("/health", None, 200),
    ("/ready", None, 200),
    ("/api/v1/procedures", {"q": "khai sinh", "page_size": 5}, 200),
    ("/api/v1/procedures", {"page_size": 100000}, 422),
    ("/api/v1/fields", None, 200),
    ("/api/v1/agencies", {"page": 1}, 200),
    ("/api/v1/life-events", None, 200),
    ("/api/v1/lookup/{code}", None, 404),
])
def test_answers_match_their_documented_schema(spec, gateway_url, path, params, status):
    assert path in spec["paths"]
    url = gateway_url + path.replace("{code}", "HS-NOPE-000")
    resp = requests.get(url, params=params, timeout=30)
    assert resp.status_code == status, resp.text[:500]
    conforms(spec, "GET", path, resp)


def test_a_draft_body_declares_fee_exemptions_as_a_filing_body_does(spec):
    """Drafts carry the filing's ``fee_exemptions``: the same item schema in both bodies."""
    schemas = spec["components"]["schemas"]

    def body(method: str, path: str) -> dict:
        schema = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        return schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema

    filing = body("post", "/api/v1/dossiers")["properties"]["fee_exemptions"]
    for method, path in (("post", "/api/v1/dossiers/drafts"), ("put", "/api/v1/dossiers/drafts/{draft_id}")):
        declared = body(method, path)["properties"]["fee_exemptions"]
        assert declared["type"] == "array" and declared["items"] == filing["items"], (method, path)
        assert declared["maxItems"] == filing["maxItems"]


def test_docs_page_lists_every_operation(spec, gateway_url):
    resp = requests.get(f"{gateway_url}/docs", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    fallback = resp.text.split("<noscript>", 1)[1]  # the list a browser without JavaScript shows
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in fallback


# -- AsyncAPI --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi(gateway_url) -> dict:
    resp = requests.get(f"{gateway_url}/asyncapi.json", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


def _field_names(schema_cls) -> tuple[set[str], set[str]]:
    fields = schema_cls().fields
    names = {f.data_key or n for n, f in fields.items() if not f.load_only}
    required = {f.data_key or n for n, f in fields.items() if f.required}
    return names, required


def test_asyncapi_lists_every_registered_event(asyncapi):
    contracts = list(CATALOGUE)
    assert len(contracts) >= 20
    assert asyncapi["asyncapi"].startswith("2.")
    schemas = asyncapi["components"]["schemas"]
    for contract in contracts:
        channel = asyncapi["channels"][contract.routing_key]
        binding = channel["bindings"]["amqp"]
        assert binding["is"] == "routingKey"
        assert binding["exchange"] == {"name": contract.exchange, "type": "topic", "durable": True,
                                       "autoDelete": False, "vhost": "/"}
        assert contract.version in channel["x-versions"]
        ref = f"#/components/messages/{message_name(contract.event_type, contract.version)}"
        assert {"$ref": ref} in channel["subscribe"]["message"]["oneOf"]
        message = asyncapi["components"]["messages"][message_name(contract.event_type, contract.version)]
        assert message["name"] == contract.event_type and message["x-schema-version"] == contract.version
        data = message["payload"]["allOf"][1]["properties"]
        assert data["event_type"]["enum"] == [contract.event_type]
        assert data["schema_version"]["enum"] == [contract.version]
        payload = schemas[schema_name(contract.event_type, contract.version)]
        names, required = _field_names(contract.schema)
        assert set(payload.get("properties", {})) == names, contract.event_type
        assert set(payload.get("required", [])) == required, contract.event_type
    every_version = {(c.routing_key, c.version) for c in contracts}
    listed = {(key, v) for key, ch in asyncapi["channels"].items() for v in ch["x-versions"]}
    assert listed == every_version  # nothing stale, nothing missing
    envelope = schemas["Envelope"]
    assert {"event_id", "event_type", "schema_version", "data", "correlation_id"} <= set(envelope["properties"])


def test_asyncapi_is_the_catalogue_as_generated(asyncapi):
    assert asyncapi == json.loads(json.dumps(build_asyncapi(), default=str))


def test_the_events_page_is_the_catalogue_as_generated():
    """docs/events.md is what agency teams read: a contract added or changed without
    regenerating it (``python -m gateway.http.asyncapi``) fails here."""
    page = Path(__file__).resolve().parents[2] / "docs" / "events.md"
    assert page.read_text(encoding="utf-8") == render_markdown(build_asyncapi()) + "\n", (
        "docs/events.md is stale: run python -m gateway.http.asyncapi")


def test_a_real_event_validates_against_its_published_message(asyncapi):
    """An envelope as the relay publishes it passes the document's payload schema."""
    from portal_common.contracts.fields import EnvelopeSchema

    envelope = {
        "event_id": "0b8f0d1c-8a38-4a53-9d2b-0f5a3f1f7a11", "event_type": "ServiceProbeRecorded",
        "schema_version": 1, "stream_id": "probe-1", "stream_type": "probe", "stream_version": 1, "position": 7,
        "occurred_at": "2026-01-02T03:04:05+00:00", "recorded_at": "2026-01-02T03:04:05+00:00",
        "correlation_id": "rid-1", "causation_id": None, "actor": None, "data": {"note": "hello", "sequence": 1},
    }
    EnvelopeSchema().load(envelope)
    components = asyncapi["components"]
    payload = components["messages"]["ServiceProbeRecorded.v1"]["payload"]
    validator = jsonschema_rs.validator_for(_nullable_to_json_schema({**payload, "components": components}))
    assert validator.is_valid(envelope)
    assert not validator.is_valid({**envelope, "data": {"sequence": 1}})  # note is required
    assert not validator.is_valid({**envelope, "event_type": "SomethingElse"})
