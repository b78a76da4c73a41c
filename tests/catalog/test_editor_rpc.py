"""Editors' changes over RPC on the running system, and their events reaching a subscriber
bound to ``catalog.events`` on the test vhost."""

from __future__ import annotations

import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from portal_common.errors import Conflict, InvalidInput, NotFound
from tests.catalog.conftest import procedure_payload


def editor() -> dict:
    return {"request_id": uuid.uuid4().hex, "client_ip": "127.0.0.1",
            "actor": {"kind": "editor", "id": "editor-1", "agency_code": None, "subject": None}}


@pytest.fixture(scope="module")
def cluster(system, amqp_uri):
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as proxy:
        yield proxy


def test_publish_amend_withdraw_keeps_versions_and_publishes_events(cluster, subscriber, unique_code):
    code = unique_code("TP")
    out = cluster.catalog.publish_procedure(procedure_payload(code), context=editor())
    assert out == {"code": code, "version": 1, "status": "published"}
    assert cluster.catalog.search(q="thu nghiem khai thac da ong")["items"][0]["code"] == code

    amended = cluster.catalog.amend_procedure(code, {"processing_days": 7, "fees": []}, context=editor())
    assert amended["version"] == 2 and amended["changed"] == ["fees", "processing_days"]
    current = cluster.catalog.get_procedure(code)
    assert (current["version"], current["processing_days"], current["fees"]) == (2, 7, [])
    first = cluster.catalog.get_procedure(code, 1)
    assert (first["version"], first["processing_days"]) == (1, 12)
    [fee] = first["fees"]  # as stated, with the fee schedule's defaults (id, amount, when due)
    assert {k: fee[k] for k in ("name", "amount_vnd", "amount", "id", "basis", "due")} == {
        "name": "Lệ phí", "amount_vnd": 100000, "amount": 100000, "id": "fee1", "basis": "fixed",
        "due": "before_reception"}
    assert [v["version"] for v in cluster.catalog.procedure_history(code)] == [1, 2]

    cluster.catalog.withdraw_procedure(code, "Bãi bỏ theo quyết định công bố", context=editor())
    with pytest.raises(NotFound) as err:
        cluster.catalog.get_procedure(code)
    assert err.value.code == "procedure_withdrawn"
    assert cluster.catalog.get_procedure(code, 2)["version"] == 2  # dossiers filed under it still read it
    assert code not in [i["code"] for i in cluster.catalog.search(q="thu nghiem khai thac da ong")["items"]]
    with pytest.raises(Conflict):
        cluster.catalog.amend_procedure(code, {"processing_days": 3}, context=editor())
    with pytest.raises(NotFound):
        cluster.catalog.agencies_for(code, 51)

    events = subscriber(f"procedure-{code}", 3)
    assert [e["event_type"] for e in events] == ["ProcedurePublished", "ProcedureAmended", "ProcedureWithdrawn"]
    assert [e["routing_key"] for e in events] == ["ProcedurePublished", "ProcedureAmended", "ProcedureWithdrawn"]
    published, amend, withdrawn = (e["data"] for e in events)
    assert published["processing_days"] == 12 and published["agency_kinds"] == ["province_construction"]
    assert (amend["version"], amend["previous_version"], amend["processing_days"]) == (2, 1, 7)
    assert withdrawn == {"code": code, "version": 2, "reason": "Bãi bỏ theo quyết định công bố"}
    assert events[0]["actor"]["kind"] == "editor" and events[0]["schema_version"] == 1


def test_register_and_dissolve_agency_offers_the_successor(cluster, subscriber, unique_code):
    old, new = unique_code("TA"), unique_code("TB")
    base = {"level": "province", "kind": "province_construction", "province_code": 51,
            "province_name": "Quảng Ngãi", "parent_code": "P51-UBND"}
    cluster.catalog.register_agency(dict(base, code=old, name="Ban Quản lý thử nghiệm cũ"), context=editor())
    cluster.catalog.register_agency(dict(base, code=new, name="Ban Quản lý thử nghiệm mới"), context=editor())
    offered = [a["code"] for a in cluster.catalog.agencies_for("1.010000", 51)]
    assert old in offered and new in offered

    cluster.catalog.amend_agency(old, {"phone": "02553999999"}, context=editor())
    assert cluster.catalog.get_agency(old)["phone"] == "02553999999"
    out = cluster.catalog.dissolve_agency(old, new, "2025-07-01", "Hợp nhất", context=editor())
    assert out["status"] == "dissolved" and out["successor"] == new

    offered = [a["code"] for a in cluster.catalog.agencies_for("1.010000", 51)]
    assert old not in offered and new in offered and "P51-SXD" in offered
    got = cluster.catalog.get_agency(old)
    assert (got["status"], got["successor"], got["dissolved_on"]) == ("dissolved", new, "2025-07-01")
    assert cluster.catalog.resolve_agency(old)["code"] == new

    with pytest.raises(Conflict):
        cluster.catalog.dissolve_agency(old, new, context=editor())
    with pytest.raises(Conflict):  # new -> old -> new would loop
        cluster.catalog.dissolve_agency(new, old, context=editor())
    with pytest.raises(NotFound):
        cluster.catalog.dissolve_agency(new, "NO-SUCH-AGENCY", context=editor())
    with pytest.raises(InvalidInput):
        cluster.catalog.dissolve_agency(new, new, context=editor())

    events = subscriber(f"agency-{old}", 3)
    assert [e["event_type"] for e in events] == ["AgencyRegistered", "AgencyAmended", "AgencyDissolved"]
    assert events[2]["data"] == {"code": old, "successor": new, "resolved_successor": new,
                                 "dissolved_on": "2025-07-01", "reason": "Hợp nhất"}


@pytest.mark.parametrize("payload,code", [
    ({}, "validation_failed"),
    ({"code": "x", "name": 5}, "validation_failed"),
    ("not a dict", "validation_failed"),
    ("unknown_field", "unknown_field"),
    ("extra_key", "validation_failed"),
    ("huge_days", "validation_failed"),
    ("bad_code", "validation_failed"),
])
def test_hostile_publish_is_refused_and_writes_nothing(cluster, unique_code, payload, code):
    new_code = unique_code("TH")
    if payload == "unknown_field":
        payload = procedure_payload(new_code, field="nope")
    elif payload == "extra_key":
        payload = dict(procedure_payload(new_code), status="published")
    elif payload == "huge_days":
        payload = procedure_payload(new_code, processing_days=10**9)
    elif payload == "bad_code":
        payload = procedure_payload("a\x00b")
    with pytest.raises(InvalidInput) as err:
        cluster.catalog.publish_procedure(payload, context=editor())
    assert err.value.code == code
    with pytest.raises(NotFound):
        cluster.catalog.get_procedure(new_code)


def test_duplicate_publish_and_unknown_targets(cluster, unique_code):
    code = unique_code("TD")
    cluster.catalog.publish_procedure(procedure_payload(code), context=editor())
    with pytest.raises(Conflict):
        cluster.catalog.publish_procedure(procedure_payload(code), context=editor())
    with pytest.raises(InvalidInput):
        cluster.catalog.amend_procedure(code, {"processing_days": 12}, context=editor())  # nothing changed
    with pytest.raises(InvalidInput):
        cluster.catalog.amend_procedure(code, {"code": "other"}, context=editor())
    with pytest.raises(NotFound):
        cluster.catalog.amend_procedure("9.999999", {"processing_days": 1}, context=editor())
    with pytest.raises(NotFound):
        cluster.catalog.withdraw_procedure("9.999999", "x", context=editor())
    with pytest.raises(InvalidInput):
        cluster.catalog.withdraw_procedure(code, "", context=editor())
    with pytest.raises(NotFound):
        cluster.catalog.get_procedure(code, 99)


def test_a_draft_is_hidden_until_published(cluster, subscriber, unique_code):
    code = unique_code("TR")
    name = f"Cấp giấy phép thử nghiệm nuôi ong mật {code}"
    out = cluster.catalog.draft_procedure(procedure_payload(code, name=name), context=editor())
    assert out == {"code": code, "version": 1, "status": "draft"}
    with pytest.raises(NotFound):
        cluster.catalog.get_procedure(code)
    with pytest.raises(NotFound):
        cluster.catalog.procedure_history(code)
    with pytest.raises(NotFound):
        cluster.catalog.agencies_for(code, 51)
    assert code not in [i["code"] for i in cluster.catalog.search(q="thu nghiem nuoi ong mat")["items"]]
    assert cluster.catalog.get_procedure(code, include_draft=True)["status"] == "draft"

    out = cluster.catalog.amend_procedure(code, {"processing_days": 9}, context=editor())
    assert (out["version"], out["status"]) == (1, "draft")  # rewritten, not versioned
    assert cluster.catalog.publish_draft(code, context=editor()) == {"code": code, "version": 1,
                                                                      "status": "published"}
    published = cluster.catalog.get_procedure(code)
    assert (published["version"], published["processing_days"], published["status"]) == (1, 9, "published")
    assert cluster.catalog.search(q="thu nghiem nuoi ong mat")["items"][0]["code"] == code
    assert "P51-SXD" in [a["code"] for a in cluster.catalog.agencies_for(code, 51)]
    with pytest.raises(Conflict) as err:
        cluster.catalog.publish_draft(code, context=editor())
    assert err.value.code == "not_a_draft"
    with pytest.raises(NotFound):
        cluster.catalog.publish_draft("9.999999", context=editor())

    events = subscriber(f"procedure-{code}", 3)
    assert [e["event_type"] for e in events] == ["ProcedureDrafted", "ProcedureDrafted", "ProcedurePublished"]
    assert events[1]["data"]["processing_days"] == 9 and events[2]["data"]["status"] == "published"


@pytest.mark.parametrize("change,code", [
    ({"name": "Tên\x00mới"}, "validation_failed"),
    ({"name": "Tên \u202emới"}, "validation_failed"),
    ({"levels": ["commune"]}, "levels_mismatch"),
    ({"agency_kinds": ["district_people_committee"], "levels": ["province"]}, "invalid_agency_kind"),
    ({"required_documents": [{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]}, "validation_failed"),
    ({"field": "nope"}, "unknown_field"),
    ({"version": 7}, "validation_failed"),
])
def test_hostile_amendments_are_refused_and_change_nothing(cluster, unique_code, change, code):
    proc = unique_code("TX")
    cluster.catalog.publish_procedure(procedure_payload(proc), context=editor())
    with pytest.raises(InvalidInput) as err:
        cluster.catalog.amend_procedure(proc, change, context=editor())
    assert err.value.code == code
    current = cluster.catalog.get_procedure(proc)
    assert current["version"] == 1 and current["name"] == procedure_payload(proc)["name"]


AGENCY = {"name": "Ban thử nghiệm", "level": "province", "kind": "province_construction", "province_code": 51}


@pytest.mark.parametrize("over,code", [
    ({"province_code": 62}, "unknown_province"),
    ({"level": "commune", "kind": "commune_people_committee", "ward_code": 4}, "ward_not_in_province"),
    ({"level": "commune", "kind": "commune_people_committee"}, "unit_required"),
    ({"level": "central", "kind": "central_justice"}, "invalid_unit"),
    ({"province_code": None}, "unit_required"),
    ({"kind": "Sở Xây dựng"}, "validation_failed"),
    ({"name": "Ban\x00thử"}, "validation_failed"),
    ({"email": "not-an-email"}, "validation_failed"),
    ({"phone": "<script>"}, "validation_failed"),
    ({"parent_code": "NO-SUCH"}, "unknown_parent"),
    ({"status": "dissolved"}, "validation_failed"),
])
def test_hostile_agency_registration_is_refused(cluster, unique_code, over, code):
    agency = unique_code("TY")
    with pytest.raises(InvalidInput) as err:
        cluster.catalog.register_agency(dict(AGENCY, code=agency, **over), context=editor())
    assert err.value.code == code
    with pytest.raises(NotFound):
        cluster.catalog.get_agency(agency)


def test_agency_place_names_come_from_the_package(cluster, unique_code):
    agency = unique_code("TZ")
    out = cluster.catalog.register_agency(
        {"code": agency, "name": "Bộ phận một cửa thử nghiệm", "level": "commune", "kind": "commune_people_committee",
         "ward_code": 23548, "province_name": "Tỉnh gõ tay"}, context=editor())
    assert (out["province_code"], out["province_name"], out["ward_name"]) == (51, "Quảng Ngãi", "Xã Ya Ly")
    assert agency in [a["code"] for a in cluster.catalog.agencies_for("1.001193", 51, 23548)]
    with pytest.raises(InvalidInput) as err:  # a hand-typed name is not a change
        cluster.catalog.amend_agency(agency, {"province_name": "Tỉnh khác"}, context=editor())
    assert err.value.code == "nothing_changed"
    moved = cluster.catalog.amend_agency(agency, {"ward_code": 10489}, context=editor())
    assert (moved["province_code"], moved["ward_name"], moved["version"]) == (1, "Xã Hương Sơn", 2)
    with pytest.raises(InvalidInput) as err:
        cluster.catalog.amend_agency(agency, {"parent_code": agency}, context=editor())
    assert err.value.code == "invalid_parent"
    cluster.catalog.dissolve_agency(agency, "W10489-UBND", context=editor())  # leave the seed's offer as it was
    assert [a["code"] for a in cluster.catalog.agencies_for("1.001193", 1, 10489)] == ["W10489-UBND"]


def test_concurrent_publishes_of_one_code_give_one_procedure_and_a_conflict(cluster, system, amqp_uri, unique_code):
    import eventlet

    code = unique_code("TC")
    outcomes = []

    def publish():
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as proxy:
            try:
                outcomes.append(proxy.catalog.publish_procedure(procedure_payload(code), context=editor()))
            except Conflict as exc:
                outcomes.append(exc.code)

    threads = [eventlet.spawn(publish) for _ in range(4)]
    for t in threads:
        t.wait()
    assert sum(1 for o in outcomes if isinstance(o, dict)) == 1
    assert all(o in ("procedure_exists", "concurrent_change") for o in outcomes if not isinstance(o, dict))
    assert [v["version"] for v in cluster.catalog.procedure_history(code)] == [1]


def test_the_spelling_dictionary_follows_publications(cluster, unique_code):
    import random
    import string

    word = "".join(random.choices(string.ascii_lowercase, k=9))  # a word no procedure has
    typo = word[0] + word[2] + word[1] + word[3:]  # two letters swapped
    code = unique_code("TW")
    cluster.catalog.publish_procedure(procedure_payload(code, name=f"Cấp phép thử nghiệm {word}"), context=editor())
    assert cluster.catalog.search(q=f"cap phep {typo}")["items"][0]["code"] == code
    cluster.catalog.withdraw_procedure(code, "Bãi bỏ", context=editor())
    assert code not in [i["code"] for i in cluster.catalog.search(q=f"cap phep {typo}")["items"]]


def test_an_inter_agency_chain_names_a_procedure_of_the_catalog(cluster, unique_code):
    code = unique_code("TN")
    chain = {"code": "1.004194", "agency_kind": "commune_police"}
    cluster.catalog.publish_procedure(procedure_payload(code, next_procedure=chain), context=editor())
    assert cluster.catalog.get_procedure(code)["next_procedure"] == chain
    for nxt, error in (({"code": "9.999999", "agency_kind": "commune_police"}, "unknown_next_procedure"),
                       ({"code": code, "agency_kind": "commune_police"}, "invalid_next_procedure"),
                       ({"code": "1.004194", "agency_kind": "police"}, "validation_failed")):
        with pytest.raises(InvalidInput) as err:
            cluster.catalog.amend_procedure(code, {"next_procedure": nxt}, context=editor())
        assert err.value.code == error
    with pytest.raises(InvalidInput) as err:
        cluster.catalog.publish_procedure(procedure_payload(unique_code("TN"), next_procedure={
            "code": "9.999999", "agency_kind": "commune_police"}), context=editor())
    assert err.value.code == "unknown_next_procedure"


def test_a_withdrawn_draft_was_never_offered(cluster, unique_code):
    code = unique_code("TV")
    cluster.catalog.draft_procedure(procedure_payload(code), context=editor())
    assert cluster.catalog.withdraw_procedure(code, "Không ban hành", context=editor())["status"] == "withdrawn"
    for call in (lambda: cluster.catalog.get_procedure(code), lambda: cluster.catalog.get_procedure(code, 1),
                 lambda: cluster.catalog.procedure_history(code)):
        with pytest.raises(NotFound):
            call()
    assert cluster.catalog.get_procedure(code, 1, include_draft=True)["name"] == procedure_payload(code)["name"]
    with pytest.raises(Conflict):
        cluster.catalog.publish_draft(code, context=editor())
