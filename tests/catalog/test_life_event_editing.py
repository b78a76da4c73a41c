"""Editors define, amend and retire life events through the gateway (role ``editor``): the
public list and page, and each procedure's ``life_events``, follow at once; every change is an
event on ``catalog.events`` with the whole life event. Bad input is a 4xx naming the fields;
other roles are refused and change nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.catalog.conftest import procedure_payload
from tests.catalog.test_gateway import call, get
from tests.support.accounts import register_citizen, staff_token

# seed procedures (Lái xe và phương tiện): published, and in no life event this file retires
DRIVING = ["1.002804", "1.002805", "1.002806", "1.002807"]


@pytest.fixture(scope="module")
def editor_token(gateway_url) -> str:
    return staff_token(gateway_url, "editor")


def _id() -> str:
    return f"thu-nghiem-{uuid.uuid4().hex[:10]}"


def _body(event_id: str, **over) -> dict:
    return dict({"id": event_id, "name": "Đổi xe thử nghiệm", "target": "citizen",
                 "description": "Các bước khi đổi phương tiện.", "procedure_codes": DRIVING[:2]}, **over)


def _life_events_of(gateway_url: str, code: str) -> set[str]:
    status, p = get(gateway_url, f"/api/v1/procedures/{code}")
    assert status == 200
    return {e["id"] for e in p["life_events"]}


def _listed(gateway_url: str, target: str = "citizen") -> set[str]:
    return {e["id"] for e in get(gateway_url, "/api/v1/life-events", target=target)[1]["items"]}


def test_define_answers_the_life_event_as_get_does_and_lists_it(gateway_url, editor_token, subscriber):
    event_id = _id()
    status, out = call(f"{gateway_url}/api/v1/life-events", "POST", _body(event_id), editor_token)
    assert status == 201, out
    status, got = get(gateway_url, f"/api/v1/life-events/{event_id}")
    assert status == 200 and out == got
    assert (got["name"], got["target"], got["version"]) == ("Đổi xe thử nghiệm", "citizen", 1)
    assert [p["code"] for p in got["procedures"]] == DRIVING[:2]
    assert event_id in _listed(gateway_url) and event_id not in _listed(gateway_url, "business")
    assert event_id in _life_events_of(gateway_url, DRIVING[0])

    [defined] = subscriber(f"life-event-{event_id}", 1)
    assert (defined["event_type"], defined["schema_version"], defined["actor"]["kind"]) == (
        "LifeEventDefined", 1, "editor")
    assert defined["stream_type"] == "life_event"
    assert defined["data"] == {"id": event_id, "name": "Đổi xe thử nghiệm", "target": "citizen",
                               "description": "Các bước khi đổi phương tiện.", "procedure_codes": DRIVING[:2],
                               "status": "active", "version": 1}


def test_amend_reorders_and_the_procedures_life_events_follow(gateway_url, editor_token, subscriber):
    event_id = _id()
    assert call(f"{gateway_url}/api/v1/life-events", "POST", _body(event_id), editor_token)[0] == 201
    new_order = [DRIVING[2], DRIVING[1]]
    status, out = call(f"{gateway_url}/api/v1/life-events/{event_id}", "PUT",
                       {"procedure_codes": new_order, "name": "Đổi xe (sửa)"}, editor_token)
    assert status == 200 and out["changed"] == ["name", "procedure_codes"] and out["version"] == 2
    status, got = get(gateway_url, f"/api/v1/life-events/{event_id}")
    assert [p["code"] for p in got["procedures"]] == new_order and got["name"] == "Đổi xe (sửa)"
    assert got["description"] == "Các bước khi đổi phương tiện."  # not sent, kept
    assert event_id not in _life_events_of(gateway_url, DRIVING[0])
    assert event_id in _life_events_of(gateway_url, DRIVING[2])

    # its procedures are for citizens only: a business's life event cannot list them
    status, problem = call(f"{gateway_url}/api/v1/life-events/{event_id}", "PUT", {"target": "business"},
                           editor_token)
    assert (status, problem["code"]) == (422, "procedure_target_mismatch")
    assert [e["field"] for e in problem["errors"]] == ["procedure_codes[0]", "procedure_codes[1]"]
    both = [DRIVING[3]]  # for citizens and businesses alike
    status, out = call(f"{gateway_url}/api/v1/life-events/{event_id}", "PUT",
                       {"target": "business", "procedure_codes": both}, editor_token)
    assert status == 200 and out["target"] == "business"
    assert event_id in _listed(gateway_url, "business") and event_id not in _listed(gateway_url)

    events = subscriber(f"life-event-{event_id}", 3)
    assert [e["event_type"] for e in events] == ["LifeEventDefined", "LifeEventAmended", "LifeEventAmended"]
    amended = events[1]["data"]
    assert (amended["procedure_codes"], amended["name"], amended["version"], amended["changed"]) == (
        new_order, "Đổi xe (sửa)", 2, ["name", "procedure_codes"])
    assert (events[2]["data"]["target"], events[2]["data"]["procedure_codes"]) == ("business", both)


def test_retire_takes_it_out_of_browsing_for_good(gateway_url, editor_token, subscriber):
    event_id = _id()
    assert call(f"{gateway_url}/api/v1/life-events", "POST", _body(event_id), editor_token)[0] == 201
    status, out = call(f"{gateway_url}/api/v1/life-events/{event_id}/retire", "POST", {"reason": "Gộp"},
                       editor_token)
    assert status == 200 and out == {"id": event_id, "version": 2, "status": "retired"}
    status, problem = get(gateway_url, f"/api/v1/life-events/{event_id}")
    assert status == 404 and problem["code"] == "life_event_retired"
    assert event_id not in _listed(gateway_url)
    assert event_id not in _life_events_of(gateway_url, DRIVING[0])
    for method, path, body in (("POST", "/retire", {"reason": "x"}), ("PUT", "", {"name": "Khác"})):
        status, problem = call(f"{gateway_url}/api/v1/life-events/{event_id}{path}", method, body, editor_token)
        assert status == 409 and problem["code"] == "life_event_retired"
    status, problem = call(f"{gateway_url}/api/v1/life-events", "POST", _body(event_id), editor_token)
    assert status == 409 and problem["code"] == "life_event_exists"  # the id stays taken

    events = subscriber(f"life-event-{event_id}", 2)
    assert events[1]["event_type"] == "LifeEventRetired"
    assert (events[1]["data"]["status"], events[1]["data"]["reason"], events[1]["data"]["procedure_codes"]) == (
        "retired", "Gộp", DRIVING[:2])


def test_unknown_and_withdrawn_procedures_are_all_listed(gateway_url, editor_token, unique_code):
    withdrawn = unique_code("LW")
    assert call(f"{gateway_url}/api/v1/procedures", "POST", procedure_payload(withdrawn), editor_token)[0] == 201
    assert call(f"{gateway_url}/api/v1/procedures/{withdrawn}/withdraw", "POST", {"reason": "x"},
                editor_token)[0] == 200
    event_id = _id()
    codes = [DRIVING[0], "9.999901", withdrawn, "9.999902"]
    status, problem = call(f"{gateway_url}/api/v1/life-events", "POST", _body(event_id, procedure_codes=codes),
                           editor_token)
    assert status == 422 and problem["code"] == "unknown_procedures"
    assert [e["field"] for e in problem["errors"]] == ["procedure_codes[1]", "procedure_codes[2]",
                                                       "procedure_codes[3]"]
    assert "9.999901" in problem["errors"][0]["message"] and "withdrawn" in problem["errors"][1]["message"]
    assert get(gateway_url, f"/api/v1/life-events/{event_id}")[0] == 404

    assert call(f"{gateway_url}/api/v1/life-events", "POST", _body(event_id), editor_token)[0] == 201
    status, problem = call(f"{gateway_url}/api/v1/life-events/{event_id}", "PUT",
                           {"procedure_codes": [DRIVING[0], "9.999903"]}, editor_token)
    assert status == 422 and [e["field"] for e in problem["errors"]] == ["procedure_codes[1]"]
    assert [p["code"] for p in get(gateway_url, f"/api/v1/life-events/{event_id}")[1]["procedures"]] == DRIVING[:2]


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "", _body("Khai_Sinh"), 422, "validation_failed"),
    ("POST", "", _body("../etc"), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", name=""), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", name="  "), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", name="Tên\x00sự kiện"), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", target="both"), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", procedure_codes=[]), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", procedure_codes=DRIVING[:1] * 2), 422, "validation_failed"),
    ("POST", "", _body("thu-nghiem-x", status="retired"), 422, "validation_failed"),
    ("POST", "", _body("khai-sinh"), 409, "life_event_exists"),
    ("PUT", "/khai-sinh", {"name": ""}, 422, "validation_failed"),
    ("PUT", "/khai-sinh", {"id": "khac"}, 422, "validation_failed"),
    ("PUT", "/khai-sinh", {"name": "Khai sinh cho trẻ"}, 422, "nothing_changed"),
    ("PUT", "/no-such-event", {"name": "X"}, 404, "life_event_not_found"),
    ("PUT", "/not~an~id", {"name": "X"}, 404, "life_event_not_found"),
    ("POST", "/no-such-event/retire", {"reason": "x"}, 404, "life_event_not_found"),
    ("POST", "/khai-sinh/retire", {"reason": ""}, 422, "validation_failed"),
])
def test_bad_editor_input_is_a_clear_4xx_and_changes_nothing(gateway_url, editor_token, method, path, body,
                                                              status, code):
    got, problem = call(f"{gateway_url}/api/v1/life-events{path}", method, body, editor_token)
    assert (got, problem["code"]) == (status, code), problem
    if code == "validation_failed":
        assert problem["errors"]
    assert get(gateway_url, "/api/v1/life-events/thu-nghiem-x")[0] == 404
    status, birth = get(gateway_url, "/api/v1/life-events/khai-sinh")
    assert status == 200 and birth["name"] == "Khai sinh cho trẻ" and birth["version"] == 1


EDITOR_CALLS = [
    ("POST", "/api/v1/life-events", _body("thu-nghiem-role")),
    ("PUT", "/api/v1/life-events/khai-sinh", {"name": "Đổi tên"}),
    ("POST", "/api/v1/life-events/khai-sinh/retire", {"reason": "x"}),
]


@pytest.fixture(scope="module")
def other_tokens(gateway_url) -> dict[str, str | None]:
    return {"anonymous": None, "citizen": register_citizen(gateway_url)["access_token"],
            "operator": staff_token(gateway_url, "operator"),
            "officer": staff_token(gateway_url, "officer", "P51-STP")}


@pytest.mark.parametrize("method,path,body", EDITOR_CALLS)
@pytest.mark.parametrize("role", ["anonymous", "citizen", "operator", "officer"])
def test_only_editors_change_life_events(gateway_url, other_tokens, method, path, body, role):
    status, problem = call(gateway_url + path, method, body, other_tokens[role])
    assert (status, problem["code"]) == ((401, "unauthorized") if role == "anonymous" else (403, "forbidden"))
    status, birth = get(gateway_url, "/api/v1/life-events/khai-sinh")
    assert status == 200 and birth["name"] == "Khai sinh cho trẻ" and birth["version"] == 1
    assert get(gateway_url, "/api/v1/life-events/thu-nghiem-role")[0] == 404


def test_the_seed_life_events_are_in_the_log_like_any_definition(catalog_db):
    with catalog_db.transaction() as cur:
        cur.execute("SELECT stream_type, version, event_type, payload FROM events WHERE stream_id = %s",
                    ("life-event-khai-sinh",))
        rows = [dict(r) for r in cur.fetchall()]
    assert [(r["stream_type"], r["version"], r["event_type"]) for r in rows] == [
        ("life_event", 1, "LifeEventDefined")]
    assert rows[0]["payload"]["procedure_codes"][:2] == ["1.001193", "1.004194"]
