"""The catalog endpoints of API.md through the running gateway, including hostile input."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest


def call(url: str, method: str = "GET", body=None, token: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        assert err.code < 500, raw
        if err.code != 414:
            assert err.headers["Content-Type"].startswith("application/problem+json"), raw
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {}


def get(base: str, path: str, **params) -> tuple[int, dict]:
    query = urllib.parse.urlencode(params)
    return call(f"{base}{path}{'?' + query if query else ''}")


@pytest.mark.parametrize("q", ["dang ky khai sinh", "Đăng ký khai sinh", "DANG KY KHAI SINH"])
def test_search_through_the_gateway(gateway_url, q):
    status, body = get(gateway_url, "/api/v1/procedures", q=q, page_size=5)
    assert status == 200
    assert set(body) == {"items", "total", "page", "page_size"} and body["page_size"] == 5
    top = body["items"][0]
    assert top["code"] == "1.001193" and top["name"] == "Đăng ký khai sinh"
    assert {"code", "name", "field", "online_level", "processing_days"} <= set(top)


def test_fully_online_services_and_filters(gateway_url):
    status, body = get(gateway_url, "/api/v1/procedures", online="full", target="citizen", page_size=100)
    assert status == 200 and body["total"] > 10
    assert all(i["online_level"] == "full" and i["target"] in ("citizen", "both") for i in body["items"])
    status, body = get(gateway_url, "/api/v1/procedures", field="doanh_nghiep", agency="P51-STC", page=2, page_size=5)
    assert status == 200 and body["page"] == 2 and body["total"] >= 10
    assert all(i["field"] == "doanh_nghiep" for i in body["items"])


def test_procedure_detail_agencies_life_events_fields(gateway_url):
    status, p = get(gateway_url, "/api/v1/procedures/1.001193")
    assert status == 200 and p["version"] >= 1
    assert p["required_documents"][0]["id"] and "mandatory" in p["required_documents"][0]
    assert {"fees", "agencies", "life_events"} <= set(p)
    status, versions = get(gateway_url, "/api/v1/procedures/1.001193/versions")
    assert status == 200 and versions["versions"][0]["version"] == 1
    status, agencies = get(gateway_url, "/api/v1/procedures/1.001193/agencies", province=51, ward=21220)
    assert status == 200 and [a["code"] for a in agencies["items"]] == ["W21220-UBND"]
    assert {"code", "name", "level"} <= set(agencies["items"][0])
    status, agencies = get(gateway_url, "/api/v1/procedures/2.001612/agencies", province=51)
    assert status == 200 and [a["code"] for a in agencies["items"]] == ["P51-STC"]
    status, events = get(gateway_url, "/api/v1/life-events", target="business")
    assert status == 200 and events["items"] and {e["target"] for e in events["items"]} == {"business"}
    status, event = get(gateway_url, "/api/v1/life-events/khoi-nghiep")
    assert status == 200 and event["procedures"][0]["code"] == "2.001611"
    status, fields = get(gateway_url, "/api/v1/fields")
    assert status == 200 and len(fields["items"]) >= 8


def test_agencies_endpoints(gateway_url):
    status, body = get(gateway_url, "/api/v1/agencies", q="so tu phap quang ngai")
    assert status == 200 and body["items"][0]["code"] == "P51-STP"
    status, body = get(gateway_url, "/api/v1/agencies", province=1, level="commune", page_size=100)
    assert status == 200 and body["total"] == 2 * 126 and len(body["items"]) == 100
    status, old = get(gateway_url, "/api/v1/agencies/H522-UBND")
    assert status == 200 and old["status"] == "dissolved" and old["successor"] == "W21220-UBND"


BAD_QUERIES = [
    ("/api/v1/procedures", {"page_size": 10000}),
    ("/api/v1/procedures", {"page_size": 0}),
    ("/api/v1/procedures", {"page": "abc"}),
    ("/api/v1/procedures", {"page": -1}),
    ("/api/v1/procedures", {"q": "x" * 300}),
    ("/api/v1/procedures", {"q": "dang\x00ky"}),
    ("/api/v1/procedures", {"q": "dang\nky"}),
    ("/api/v1/procedures", {"target": "martians"}),
    ("/api/v1/procedures", {"online": "sometimes"}),
    ("/api/v1/procedures", {"level": "galaxy"}),
    ("/api/v1/procedures/1.001193", {"version": "abc"}),
    ("/api/v1/procedures/1.001193", {"version": 0}),
    ("/api/v1/procedures/1.001193/agencies", {"province": "Quảng Ngãi"}),
    ("/api/v1/procedures/1.001193/agencies", {"ward": -5}),
    ("/api/v1/life-events", {"target": "aliens"}),
    ("/api/v1/agencies", {"page_size": 1000}),
    ("/api/v1/agencies", {"level": "x"}),
    ("/api/v1/agencies", {"province": "abc"}),
    ("/api/v1/agencies", {"q": "\x07bell"}),
]


@pytest.mark.parametrize("path,params", BAD_QUERIES)
def test_hostile_queries_get_422(gateway_url, path, params):
    status, body = get(gateway_url, path, **params)
    assert status == 422, body
    assert body["code"] == "validation_failed"


def test_ten_kilobyte_query_is_a_clear_4xx(gateway_url):
    status, body = get(gateway_url, "/api/v1/procedures", q="đăng ký " * 1300)  # 10 kB once encoded
    assert status == 414 and body["code"] == "query_too_long"
    status, _ = get(gateway_url, "/api/v1/procedures", q="x" * 70_000)
    assert status == 414  # over the HTTP server's 64 kB request line: refused before the gateway runs
    status, body = get(gateway_url, "/api/v1/procedures", q="dang ky " * 600)  # 4.8 kB
    assert status == 414 and body["code"] == "query_too_long"
    status, body = get(gateway_url, "/api/v1/procedures", q="dang ky khai sinh " * 12)  # 204 chars: under the
    assert status == 422 and body["code"] == "validation_failed"                    # URL limit, over q's


def test_provinces_and_their_wards(gateway_url):
    status, body = get(gateway_url, "/api/v1/provinces")
    assert status == 200 and body["total"] == 34 and len(body["items"]) == 34
    assert {"code": 51, "name": "Quảng Ngãi"}.items() <= next(p for p in body["items"] if p["code"] == 51).items()
    status, qn = get(gateway_url, "/api/v1/provinces/51")
    assert status == 200 and qn["name"] == "Quảng Ngãi" and len(qn["wards"]) == 96
    assert any(w["code"] == 21220 and w["name"] == "Xã Sơn Tịnh" for w in qn["wards"])
    for bad in ("62", "abc", "%00", "9" * 300):
        status, problem = call(f"{gateway_url}/api/v1/provinces/{bad}")
        assert status == 404 and problem["code"] == "province_not_found"


@pytest.mark.parametrize("params,code", [
    ({"province": 51, "ward": 4}, "ward_not_in_province"),
    ({"province": 62}, "unknown_province"),
    ({"ward": 99998}, "unknown_ward"),
])
def test_choosing_an_agency_for_a_place_that_does_not_exist(gateway_url, params, code):
    status, problem = get(gateway_url, "/api/v1/procedures/1.001193/agencies", **params)
    assert status == 422 and problem["code"] == code


def test_a_dissolved_agency_is_never_offered_through_the_gateway(gateway_url):
    status, body = get(gateway_url, "/api/v1/procedures/2.001611/agencies", province=51)
    assert status == 200 and [a["code"] for a in body["items"]] == ["P51-STC"]  # not P51-SKHDT / P62-*
    status, body = get(gateway_url, "/api/v1/procedures/1.001193/agencies", ward=21220)
    assert status == 200 and [a["code"] for a in body["items"]] == ["W21220-UBND"]  # not H522-UBND
    status, body = get(gateway_url, "/api/v1/agencies", q="ke hoach va dau tu", include_dissolved="true")
    assert status == 200 and {"P51-SKHDT", "P62-SKHDT"} <= {a["code"] for a in body["items"]}
    status, body = get(gateway_url, "/api/v1/agencies", q="ke hoach va dau tu")
    assert status == 200 and all(a["status"] == "active" for a in body["items"])


@pytest.mark.parametrize("path", [
    "/api/v1/procedures/9.999999", "/api/v1/procedures/" + "9" * 300, "/api/v1/procedures/%2e%2e",
    "/api/v1/procedures/%E2%80%AE", "/api/v1/procedures/9.999999/agencies",
    "/api/v1/procedures/9.999999/versions", "/api/v1/life-events/nope", "/api/v1/agencies/NOPE",
    "/api/v1/agencies/%00",
])
def test_unknown_codes_get_404(gateway_url, path):
    status, body = call(gateway_url + path)
    assert status == 404, body


def test_unknown_version_gets_404(gateway_url):
    status, body = get(gateway_url, "/api/v1/procedures/1.001193", version=99)
    assert status == 404 and body["code"] == "version_not_found"


EDITOR_CALLS = [
    ("POST", "/api/v1/procedures", {"code": "X"}),
    ("PUT", "/api/v1/procedures/1.001193", {"processing_days": 2}),
    ("POST", "/api/v1/procedures/1.001193/withdraw", {"reason": "x"}),
    ("POST", "/api/v1/agencies", {"code": "X"}),
    ("PUT", "/api/v1/agencies/P51-STP", {"phone": "1"}),
    ("POST", "/api/v1/agencies/P51-STP/dissolve", {"successor": "P51-UBND"}),
]


@pytest.mark.parametrize("method,path,body", EDITOR_CALLS)
@pytest.mark.parametrize("token", [None, "not-a-jwt", "eyJhbGciOiJub25lIn0.eyJyb2xlIjoiZWRpdG9yIn0."])
def test_editor_endpoints_refuse_the_unauthenticated(gateway_url, method, path, body, token):
    status, problem = call(gateway_url + path, method, body, token)
    assert status == 401, problem
    status, p = get(gateway_url, "/api/v1/procedures/1.001193")
    assert status == 200 and p["status"] == "published"


def test_every_catalog_endpoint_is_in_the_openapi_document(gateway_url):
    status, spec = call(f"{gateway_url}/openapi.json")
    assert status == 200
    paths = " ".join(spec["paths"])
    for fragment in ("/api/v1/procedures", "/api/v1/life-events", "/api/v1/fields", "/api/v1/agencies",
                     "/withdraw", "/dissolve", "/versions", "/publish", "/drafts", "/api/v1/provinces"):
        assert fragment in paths, fragment
