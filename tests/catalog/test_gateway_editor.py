"""Editors through the gateway (role ``editor``, token from the local stand-in): publish,
amend, withdraw, drafts, agencies; every change reaches a subscriber of ``catalog.events``
with the editor as its actor. Other roles are refused (401 / 403) and change nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.catalog.conftest import procedure_payload
from tests.catalog.test_gateway import call, get
from tests.support.accounts import register_citizen, staff_token


@pytest.fixture(scope="module")
def editor_token(gateway_url) -> str:
    return staff_token(gateway_url, "editor")


def _code(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_publish_amend_withdraw_through_the_gateway_reach_a_subscriber(gateway_url, editor_token, subscriber):
    code = _code("GP")
    name = f"Cấp giấy phép thử nghiệm khai thác cát sỏi {code}"
    status, out = call(f"{gateway_url}/api/v1/procedures", "POST", procedure_payload(code, name=name), editor_token)
    assert status == 201 and out == {"code": code, "version": 1, "status": "published"}
    status, found = get(gateway_url, "/api/v1/procedures", q="THU NGHIEM KHAI THAC CAT SOI")
    assert status == 200 and found["items"][0]["code"] == code

    status, out = call(f"{gateway_url}/api/v1/procedures/{code}", "PUT",
                       {"processing_days": 4, "fees": [{"name": "Lệ phí", "amount_vnd": 150000}]}, editor_token)
    assert status == 200 and (out["version"], out["changed"]) == (2, ["fees", "processing_days"])
    status, current = get(gateway_url, f"/api/v1/procedures/{code}")
    assert status == 200 and (current["version"], current["processing_days"]) == (2, 4)
    status, first = get(gateway_url, f"/api/v1/procedures/{code}", version=1)
    assert status == 200 and (first["version"], first["processing_days"]) == (1, 12)
    status, versions = get(gateway_url, f"/api/v1/procedures/{code}/versions")
    assert [v["version"] for v in versions["versions"]] == [1, 2]

    status, out = call(f"{gateway_url}/api/v1/procedures/{code}/withdraw", "POST", {"reason": "Bãi bỏ"}, editor_token)
    assert status == 200 and out["status"] == "withdrawn"
    status, problem = get(gateway_url, f"/api/v1/procedures/{code}")
    assert status == 404 and problem["code"] == "procedure_withdrawn"
    status, old = get(gateway_url, f"/api/v1/procedures/{code}", version=2)  # dossiers filed under it
    assert status == 200 and old["processing_days"] == 4
    status, problem = call(f"{gateway_url}/api/v1/procedures/{code}", "PUT", {"processing_days": 3}, editor_token)
    assert status == 409 and problem["code"] == "procedure_withdrawn"

    events = subscriber(f"procedure-{code}", 3)
    assert [e["event_type"] for e in events] == ["ProcedurePublished", "ProcedureAmended", "ProcedureWithdrawn"]
    assert all(e["actor"]["kind"] == "editor" and e["schema_version"] == 1 for e in events)
    assert (events[1]["data"]["previous_version"], events[1]["data"]["processing_days"]) == (1, 4)
    assert events[2]["data"] == {"code": code, "version": 2, "reason": "Bãi bỏ"}


def test_drafts_through_the_gateway_are_seen_by_editors_only(gateway_url, editor_token, subscriber):
    code = _code("GD")
    status, out = call(f"{gateway_url}/api/v1/procedures/drafts", "POST", procedure_payload(code), editor_token)
    assert status == 201 and out["status"] == "draft"
    assert get(gateway_url, f"/api/v1/procedures/{code}")[0] == 404
    assert get(gateway_url, f"/api/v1/procedures/{code}/agencies", province=51)[0] == 404
    status, draft = call(f"{gateway_url}/api/v1/procedures/{code}", token=editor_token)
    assert status == 200 and draft["status"] == "draft"
    status, out = call(f"{gateway_url}/api/v1/procedures/{code}/publish", "POST", None, editor_token)
    assert status == 200 and out == {"code": code, "version": 1, "status": "published"}
    status, p = get(gateway_url, f"/api/v1/procedures/{code}")
    assert status == 200 and p["status"] == "published"
    status, problem = call(f"{gateway_url}/api/v1/procedures/{code}/publish", "POST", None, editor_token)
    assert status == 409 and problem["code"] == "not_a_draft"
    assert [e["event_type"] for e in subscriber(f"procedure-{code}", 2)] == ["ProcedureDrafted", "ProcedurePublished"]


def test_agencies_through_the_gateway_succession_reaches_the_router_s_exchange(gateway_url, editor_token,
                                                                               subscriber):
    old, new = _code("GA"), _code("GB")
    for code, name in ((old, "Ban Quản lý thử nghiệm cũ"), (new, "Ban Quản lý thử nghiệm mới")):
        status, out = call(f"{gateway_url}/api/v1/agencies", "POST",
                           {"code": code, "name": name, "level": "province", "kind": "province_construction",
                            "province_code": 51, "parent_code": "P51-UBND", "email": "ban@quangngai.gov.vn"},
                           editor_token)
        assert status == 201 and out["province_name"] == "Quảng Ngãi"
    status, out = call(f"{gateway_url}/api/v1/agencies/{old}", "PUT", {"phone": "0255 3822 222"}, editor_token)
    assert status == 200 and out["version"] == 2
    status, out = call(f"{gateway_url}/api/v1/agencies/{old}/dissolve", "POST",
                       {"successor": new, "dissolved_on": "2025-07-01", "reason": "Hợp nhất"}, editor_token)
    assert status == 200 and (out["status"], out["successor"]) == ("dissolved", new)
    status, offered = get(gateway_url, "/api/v1/procedures/1.010000/agencies", province=51)
    codes = [a["code"] for a in offered["items"]]
    assert old not in codes and new in codes
    status, got = get(gateway_url, f"/api/v1/agencies/{old}")
    assert (got["status"], got["successor"], got["dissolved_on"]) == ("dissolved", new, "2025-07-01")
    for body, code in (({"successor": new}, "agency_dissolved"), ({"successor": old}, None)):
        status, problem = call(f"{gateway_url}/api/v1/agencies/{old if code else new}/dissolve", "POST", body,
                               editor_token)
        assert status in (409, 422) and (code is None or problem["code"] == code)
    status, problem = call(f"{gateway_url}/api/v1/agencies/{new}/dissolve", "POST", {"successor": "NO-SUCH"},
                           editor_token)
    assert status == 404 and problem["code"] == "successor_not_found"
    events = subscriber(f"agency-{old}", 3)
    assert [e["event_type"] for e in events] == ["AgencyRegistered", "AgencyAmended", "AgencyDissolved"]
    assert events[2]["data"]["resolved_successor"] == new and events[2]["actor"]["kind"] == "editor"


EDITOR_CALLS = [
    ("POST", "/api/v1/procedures", procedure_payload("GX-1")),
    ("POST", "/api/v1/procedures/drafts", procedure_payload("GX-2")),
    ("PUT", "/api/v1/procedures/1.001193", {"processing_days": 2}),
    ("POST", "/api/v1/procedures/1.001193/withdraw", {"reason": "x"}),
    ("POST", "/api/v1/procedures/1.001193/publish", None),
    ("POST", "/api/v1/agencies", {"code": "GX-3", "name": "X", "level": "province", "kind": "province_justice",
                                  "province_code": 51}),
    ("PUT", "/api/v1/agencies/P51-STP", {"phone": "0255 1"}),
    ("POST", "/api/v1/agencies/P51-STP/dissolve", {"successor": "P51-UBND"}),
]


@pytest.fixture(scope="module")
def other_tokens(gateway_url) -> dict[str, str]:
    return {"citizen": register_citizen(gateway_url)["access_token"],
            "operator": staff_token(gateway_url, "operator"),
            "officer": staff_token(gateway_url, "officer", "P51-STP")}


@pytest.mark.parametrize("method,path,body", EDITOR_CALLS)
@pytest.mark.parametrize("role", ["citizen", "operator", "officer"])
def test_other_roles_are_forbidden_and_change_nothing(gateway_url, other_tokens, method, path, body, role):
    status, problem = call(gateway_url + path, method, body, other_tokens[role])
    assert status == 403 and problem["code"] == "forbidden"
    status, p = get(gateway_url, "/api/v1/procedures/1.001193")
    assert status == 200 and p["status"] == "published" and p["processing_days"] == 1
    status, a = get(gateway_url, "/api/v1/agencies/P51-STP")
    assert status == 200 and a["status"] == "active" and a["phone"] != "0255 1"
    assert get(gateway_url, "/api/v1/procedures/GX-1")[0] == 404


@pytest.mark.parametrize("method,path,body,code", [
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-1"), name="Tên\x00thủ tục"), "validation_failed"),
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-2"), name="x" * 10_000), "validation_failed"),
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-3"), status="published"), "validation_failed"),
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-4"), processing_days=10**12), "validation_failed"),
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-5"), field="nope"), "unknown_field"),
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-6"), levels=["commune"]), "levels_mismatch"),
    ("POST", "/api/v1/procedures", dict(procedure_payload("GH-7"), code="../etc"), "validation_failed"),
    ("POST", "/api/v1/procedures", ["not", "an", "object"], "validation_failed"),
    ("PUT", "/api/v1/procedures/1.001193", {"name": "\u202eovert"}, "validation_failed"),
    ("PUT", "/api/v1/procedures/1.001193", {"processing_days": 1}, "nothing_changed"),
    ("PUT", "/api/v1/procedures/9.999999", {"processing_days": 2}, "procedure_not_found"),
    ("POST", "/api/v1/procedures/9.999999/withdraw", {"reason": "x"}, "procedure_not_found"),
    ("POST", "/api/v1/procedures/1.001193/withdraw", {"reason": ""}, "validation_failed"),
    ("POST", "/api/v1/procedures/1.001193/withdraw", {"reason": "x\x1b[2J"}, "validation_failed"),
    ("POST", "/api/v1/procedures/1.001193/publish", None, "not_a_draft"),
    ("POST", "/api/v1/agencies", {"code": "GH-8", "name": "X", "level": "commune", "kind": "commune_police",
                                  "province_code": 51, "ward_code": 4}, "ward_not_in_province"),
    ("POST", "/api/v1/agencies", {"code": "GH-9", "name": "X", "level": "province",
                                  "kind": "province_police", "province_code": 62}, "unknown_province"),
    ("PUT", "/api/v1/agencies/P51-STP", {"email": "a\x00@b.vn"}, "validation_failed"),
    ("PUT", "/api/v1/agencies/NOPE", {"phone": "0255"}, "agency_not_found"),
    ("POST", "/api/v1/agencies/P51-STP/dissolve", {"successor": "P51-STP"}, "invalid_successor"),
    ("POST", "/api/v1/agencies/H522-UBND/dissolve", {"successor": "P51-UBND"}, "agency_dissolved"),
])
def test_hostile_editor_input_is_a_clear_4xx_and_changes_nothing(gateway_url, editor_token, method, path, body,
                                                                   code):
    status, problem = call(gateway_url + path, method, body, editor_token)
    assert 400 <= status < 500 and problem["code"] == code, problem
    assert get(gateway_url, "/api/v1/procedures/1.001193")[1]["processing_days"] == 1
    assert get(gateway_url, "/api/v1/agencies/P51-STP")[1]["status"] == "active"
    for made in ("GH-1", "GH-2", "GH-3", "GH-4", "GH-5", "GH-6"):
        assert get(gateway_url, f"/api/v1/procedures/{made}")[0] == 404
