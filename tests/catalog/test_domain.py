"""Fast unit tests of the catalog's rules (no I/O)."""

import pytest
from marshmallow import ValidationError

from portal_common.contracts.catalog import NewLifeEventBody, NewProcedureBody
from portal_common.errors import Conflict, InvalidInput, NotFound
from services.catalog import seed_data
from services.catalog.domain import agencies, codes, life_events, procedures, search


def test_fold_removes_case_and_vietnamese_diacritics_including_d_stroke():
    assert search.fold("Đăng ký khai sinh") == "dang ky khai sinh"
    assert search.fold("ĐĂNG KÝ KẾT HÔN") == "dang ky ket hon"
    assert search.fold("Ủy ban nhân dân phường Đống Đa") == "uy ban nhan dan phuong dong da"


@pytest.mark.parametrize("q", ["a\x00b", "line\nbreak", "tab\there", "\x1b[31m"])
def test_query_with_control_characters_is_refused(q):
    with pytest.raises(InvalidInput) as err:
        search.normalise_query(q)
    assert err.value.code == "invalid_query"


def test_query_is_trimmed_and_capped():
    assert search.normalise_query("  dang   ky  ") == "dang ky"
    assert search.normalise_query("   ") is None
    with pytest.raises(InvalidInput):
        search.normalise_query("x" * (search.MAX_QUERY + 1))
    with pytest.raises(InvalidInput):
        search.normalise_query(["list"])


@pytest.mark.parametrize("page,size", [(0, 20), (1, 0), (1, 101), (1, 10_000), ("x", 1), (-3, 5)])
def test_bad_pages_are_refused(page, size):
    with pytest.raises(InvalidInput):
        search.page_of(page, size)


def test_page_offset():
    p = search.page_of(3, 25)
    assert (p.offset, p.page_size) == (50, 25)
    assert search.paginated([{"a": 1}], 51, p) == {"items": [{"a": 1}], "total": 51, "page": 3, "page_size": 25}


def test_codes():
    assert codes.valid_code("1.001193")
    assert codes.valid_code("W21220-UBND")
    for bad in ("", "../etc", "a b", "x" * 41, None, 5, "mã"):
        assert not codes.valid_code(bad)


def test_successor_chain_is_followed_to_the_active_end():
    chain = {"A": "B", "B": "C"}
    assert agencies.resolve_successor("A", chain) == "C"
    assert agencies.resolve_successor("C", chain) == "C"


def test_successor_loop_is_refused():
    with pytest.raises(Conflict):
        agencies.resolve_successor("A", {"A": "B", "B": "A"})


def test_dissolution_checks():
    assert agencies.check_dissolution("A", "B", {}, True) == "B"
    assert agencies.check_dissolution("A", "B", {"B": "C"}, True) == "C"
    with pytest.raises(InvalidInput):
        agencies.check_dissolution("A", "A", {}, True)
    with pytest.raises(NotFound):
        agencies.check_dissolution("A", "X", {}, False)
    with pytest.raises(Conflict):  # B already dissolved into A: A -> B -> A
        agencies.check_dissolution("A", "B", {"B": "A"}, True)


def test_offered_agencies_replace_dissolved_with_successor_and_dedupe():
    candidates = [{"code": "OLD", "status": "dissolved"}, {"code": "NEW", "status": "active"},
                  {"code": "X", "status": "active"}]
    assert agencies.offered_agencies(candidates, {"OLD": "NEW"}) == ["NEW", "X"]


def test_amendment_bumps_version_and_lists_changes():
    current = {"code": "c", "version": 2, "status": "published", "name": "A", "processing_days": 5}
    doc, changed = procedures.amended(current, {"processing_days": 3, "name": "A"})
    assert doc["version"] == 3 and doc["processing_days"] == 3 and changed == ["processing_days"]
    assert current["version"] == 2  # the old version is untouched
    with pytest.raises(InvalidInput):
        procedures.amended(current, {"name": "A"})
    with pytest.raises(Conflict):
        procedures.amended(dict(current, status="withdrawn"), {"name": "B"})


def test_agency_kinds_name_their_level():
    assert agencies.level_of_kind("commune_police") == "commune"
    assert agencies.level_of_kind("province_justice") == "province"
    assert agencies.level_of_kind("odd") is None


def test_seed_catalog_is_large_valid_and_consistent():
    seeded = seed_data.procedures()
    assert len(seeded) >= 100
    assert len({p["field"] for p in seeded}) >= 8
    assert len({p["code"] for p in seeded}) == len(seeded)
    for p in seeded:
        NewProcedureBody().load(p)
        assert p["illustrative"] == (p["code"] not in seed_data.REAL_VALUES)
    seed_codes = {p["code"] for p in seeded}
    assert len(seed_data.LIFE_EVENTS) >= 10
    assert {e[2] for e in seed_data.LIFE_EVENTS} == {"citizen", "business"}
    for event in seed_data.LIFE_EVENTS:
        assert set(event[4]) <= seed_codes
    for nxt, _kind in seed_data.NEXT.values():
        assert nxt in seed_codes
    for p in seeded:
        procedures.check_procedure(p)  # the seed's levels are those of its agency kinds


def test_a_draft_is_rewritten_in_place_not_versioned():
    draft = {"code": "c", "version": 1, "status": "draft", "name": "A", "processing_days": 5}
    doc, changed = procedures.amended(draft, {"processing_days": 3})
    assert (doc["version"], doc["status"], changed) == (1, "draft", ["processing_days"])


@pytest.mark.parametrize("kinds,levels,code", [
    (["province_justice"], ["commune"], "levels_mismatch"),
    (["province_justice", "commune_police"], ["province"], "levels_mismatch"),
    (["district_people_committee"], ["province"], "invalid_agency_kind"),
])
def test_procedure_levels_must_be_those_of_its_agency_kinds(kinds, levels, code):
    with pytest.raises(InvalidInput) as err:
        procedures.check_procedure({"agency_kinds": kinds, "levels": levels})
    assert err.value.code == code


@pytest.mark.parametrize("level,province,ward,ok", [
    ("central", None, None, True), ("central", 51, None, False), ("province", 51, None, True),
    ("province", None, None, False), ("commune", 51, 21220, True), ("commune", 51, None, False),
])
def test_an_agency_unit_fits_its_level(level, province, ward, ok):
    if ok:
        agencies.check_agency_unit(level, province, ward)
    else:
        with pytest.raises(InvalidInput):
            agencies.check_agency_unit(level, province, ward)


def _seed_doc(**over):
    return dict(seed_data.procedures()[0], **over)


@pytest.mark.parametrize("over", [
    {"name": "Đăng ký\x00 khai sinh"},
    {"name": "Đăng ký\nkhai sinh"},
    {"name": "Đăng ký \u202ehnis iahk"},  # a right-to-left override disguising the text
    {"field": "ho\x07tich"},
    {"legal_bases": ["Luật\x1b[31m Hộ tịch"]},
    {"required_documents": [{"id": "tp1", "name": "Tờ khai\x00"}]},
    {"required_documents": [{"id": "tp1", "name": "A"}, {"id": "tp1", "name": "B"}]},
    {"agency_kinds": ["Commune People Committee"]},
    {"description": "x" * 4001},
    {"fees": [{"name": "Lệ phí", "amount_vnd": -1}]},
    {"processing_days": "soon"},
])
def test_hostile_procedure_documents_are_refused_by_the_schema(over):
    with pytest.raises(ValidationError):
        NewProcedureBody().load(_seed_doc(**over))


def test_descriptions_may_keep_line_breaks():
    assert NewProcedureBody().load(_seed_doc(description="Bước 1.\nBước 2.\tXong."))["description"].count("\n") == 1


@pytest.mark.parametrize("q,terms", [
    ("Thủ tục xin cấp hộ chiếu như thế nào", "cap ho chieu"),
    ("làm hộ chiếu ở đâu", "ho chieu"),
    ("thủ tục", "thu tuc"),
    ("xin", "xin"),
    ("Thủ tục nhập quốc tịch", "nhap quoc tich"),
    ("căn cước", "can cuoc"),
])
def test_search_terms_drop_filler_words_at_the_ends(q, terms):
    assert search.search_terms(q) == terms


def _life_event(**over) -> dict:
    return dict({"id": "sinh-con", "name": "Sinh con", "target": "citizen", "description": "",
                 "procedure_codes": ["1.001193", "1.004194"], "status": "active", "version": 3}, **over)


def test_a_life_event_amendment_is_a_new_version_and_names_what_changed():
    doc, changed = life_events.amended_life_event(_life_event(), {"procedure_codes": ["1.004194", "1.001193"],
                                                             "name": "Sinh con"})
    assert changed == ["procedure_codes"]  # a new order is a change; the same name is not
    assert (doc["version"], doc["procedure_codes"]) == (4, ["1.004194", "1.001193"])
    with pytest.raises(InvalidInput) as err:
        life_events.amended_life_event(_life_event(), {"name": "Sinh con"})
    assert err.value.code == "nothing_changed"
    with pytest.raises(Conflict) as err:
        life_events.amended_life_event(_life_event(status="retired"), {"name": "Khác"})
    assert err.value.code == "life_event_retired"


def test_every_procedure_a_life_event_cannot_list_is_named():
    errors = life_events.unoffered_procedures(["1.001193", "9.1", "2.2", "9.3"],
                                         {"1.001193": "published", "2.2": "withdrawn", "9.3": "draft"})
    assert errors == [{"field": "procedure_codes[1]", "message": "Procedure 9.1 is not in the catalog."},
                      {"field": "procedure_codes[2]", "message": "Procedure 2.2 has been withdrawn."}]


def test_a_life_event_lists_only_procedures_for_its_applicants():
    targets = {"1.1": "citizen", "2.2": "business", "3.3": "both"}
    assert life_events.mistargeted_procedures(["1.1", "3.3", "9.9"], targets, "citizen") == []
    assert life_events.mistargeted_procedures(["3.3", "1.1", "2.2"], targets, "business") == [
        {"field": "procedure_codes[1]", "message": "Procedure 1.1 is for citizens only, not for businesses."}]


@pytest.mark.parametrize("body,field", [
    ({"id": "Khai_Sinh"}, "id"), ({"id": "-x"}, "id"), ({"id": "a" * 41}, "id"), ({"name": ""}, "name"),
    ({"name": "   "}, "name"), ({"target": "both"}, "target"), ({"procedure_codes": []}, "procedure_codes"),
    ({"procedure_codes": ["1.001193", "1.001193"]}, "procedure_codes"), ({"status": "retired"}, "status"),
])
def test_life_event_input_is_checked_field_by_field(body, field):
    good = {"id": "sinh-con", "name": "Sinh con", "target": "citizen", "procedure_codes": ["1.001193"]}
    assert NewLifeEventBody().load(good)["description"] == ""
    with pytest.raises(ValidationError) as err:
        NewLifeEventBody().load(dict(good, **body))
    assert set(err.value.messages) == {field}
