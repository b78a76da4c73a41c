"""Search, browse and agency choice on the seeded catalog, in the real PostgreSQL."""

import pytest

from portal_common.errors import InvalidInput, NotFound
from services.catalog import queries
from services.catalog.application import browsing


def codes(result):
    return [i["code"] for i in result["items"]]


@pytest.mark.parametrize("q", ["dang ky khai sinh", "Đăng ký khai sinh", "DANG KY KHAI SINH",
                               "đăng ký KHAI SINH", "ĐĂNG KÝ KHAI SINH"])
def test_search_ignores_case_and_diacritics(catalog_db, q):
    result = browsing.search(catalog_db, q, {}, 1, 10)
    assert codes(result)[0] == "1.001193"
    assert result["items"][0]["name"] == "Đăng ký khai sinh"
    baseline = browsing.search(catalog_db, "Đăng ký khai sinh", {}, 1, 50)
    assert codes(browsing.search(catalog_db, q, {}, 1, 50)) == codes(baseline)


def test_d_stroke_folds_to_d(catalog_db):
    folded = codes(browsing.search(catalog_db, "dat dai", {}, 1, 50))
    assert folded and folded == codes(browsing.search(catalog_db, "đất đai", {}, 1, 50))
    assert "1.012708" in codes(browsing.search(catalog_db, "DU LIEU DAT DAI", {}, 1, 10))


def test_word_order_and_small_typo(catalog_db):
    assert codes(browsing.search(catalog_db, "khai sinh dang ky", {}, 1, 5))[0] == "1.001193"
    assert codes(browsing.search(catalog_db, "ket hon dang ky", {}, 1, 5))[0] == "1.000894"
    assert codes(browsing.search(catalog_db, "dang ky khai sihn", {}, 1, 5))[0] == "1.001193"
    assert codes(browsing.search(catalog_db, "dnag ky ket hon", {}, 1, 5))[0] == "1.000894"


def test_name_matches_rank_above_document_text_matches(catalog_db):
    # "giấy chứng sinh" is a required document of the birth registration, not in any name
    result = codes(browsing.search(catalog_db, "giấy chứng sinh", {}, 1, 5))
    assert result[0] in {"1.001193", "1.001702", "1.000689", "1.000110"}
    # "khai sinh" is in names and in documents: every name match comes first
    items = browsing.search(catalog_db, "khai sinh", {}, 1, 50)["items"]
    in_name = ["khai sinh" in i["name"].lower() for i in items]
    assert in_name[0] and in_name == sorted(in_name, reverse=True)


def test_exact_code_is_found(catalog_db):
    assert codes(browsing.search(catalog_db, "1.000656", {}, 1, 5))[0] == "1.000656"


def test_filters(catalog_db):
    full = browsing.search(catalog_db, None, {"online": "full"}, 1, 100)
    assert full["total"] > 10 and all(i["online_level"] == "full" for i in full["items"])
    land = browsing.search(catalog_db, None, {"field": "dat_dai"}, 1, 100)
    assert land["total"] >= 5 and {i["field"] for i in land["items"]} == {"dat_dai"}
    business = browsing.search(catalog_db, None, {"target": "business"}, 1, 100)
    assert {i["target"] for i in business["items"]} <= {"business", "both"}
    commune = browsing.search(catalog_db, "giay phep", {"level": "commune"}, 1, 100)
    assert commune["total"] > 0 and all("commune" in i["levels"] for i in commune["items"])
    at_justice = codes(browsing.search(catalog_db, None, {"agency": "P51-STP"}, 1, 100))
    assert "2.000488" in at_justice and "1.001193" not in at_justice
    assert browsing.search(catalog_db, None, {"agency": "NO-SUCH"}, 1, 10)["total"] == 0
    combined = browsing.search(catalog_db, "dang ky", {"field": "ho_tich", "online": "full"}, 1, 50)
    assert combined["total"] > 0
    assert all(i["field"] == "ho_tich" and i["online_level"] == "full" for i in combined["items"])


@pytest.mark.parametrize("filters", [{"target": "aliens"}, {"level": "district"}, {"online": "maybe"},
                                     {"field": ["x"]}])
def test_bad_filters_over_rpc_are_refused(catalog_db, filters):
    with pytest.raises(InvalidInput):
        browsing.search(catalog_db, None, filters, 1, 10)


def test_pagination_with_total(catalog_db):
    first = browsing.search(catalog_db, None, {}, 1, 10)
    second = browsing.search(catalog_db, None, {}, 2, 10)
    assert first["total"] == second["total"] >= 100
    assert (first["page"], first["page_size"], len(first["items"])) == (1, 10, 10)
    assert not set(codes(first)) & set(codes(second))
    beyond = browsing.search(catalog_db, None, {}, 1000, 10)
    assert beyond["items"] == [] and beyond["total"] == first["total"]


def _plan(catalog_db, sql, args) -> str:
    with catalog_db.transaction() as cur:
        cur.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        cur.execute("EXPLAIN " + sql, args)
        return "\n".join(r["QUERY PLAN"] for r in cur.fetchall())


def test_search_uses_the_indexes(catalog_db):
    assert "procedures_tsv" in _plan(catalog_db, *queries.search_sql("dang ky khai sinh", {}, 20, 0))
    assert "procedures_name_trgm" in _plan(catalog_db, *queries.search_sql("dang ky khai sihn", {}, 20, 0, "fuzzy"))


def test_procedure_detail(catalog_db):
    p = browsing.get_procedure(catalog_db, "1.001193")
    assert p["name"] == "Đăng ký khai sinh" and p["version"] >= 1
    assert p["required_documents"][0]["id"] == "tp1"
    assert {"id", "name", "mandatory", "original_or_copy", "count", "form_template"} <= set(p["required_documents"][0])
    assert {e["id"] for e in p["life_events"]} >= {"khai-sinh"}
    assert p["agencies"][0] == {"kind": "commune_people_committee", "level": "commune",
                                "name": "Ủy ban nhân dân xã / phường"}
    assert p["next_procedure"] == {"code": "1.004194", "agency_kind": "commune_police"}
    assert p["fees"] == [] and p["processing_days"] == 1 and p["illustrative"] is False
    with pytest.raises(NotFound):
        browsing.get_procedure(catalog_db, "9.999999")
    with pytest.raises(NotFound):
        browsing.get_procedure(catalog_db, "../../etc/passwd")


def test_life_events_and_fields(catalog_db):
    events = browsing.life_events(catalog_db)
    assert len(events) >= 10
    assert {e["target"] for e in browsing.life_events(catalog_db, "business")} == {"business"}
    birth = browsing.life_event(catalog_db, "khai-sinh")
    assert [p["code"] for p in birth["procedures"]][:2] == ["1.001193", "1.004194"]
    with pytest.raises(NotFound):
        browsing.life_event(catalog_db, "no-such-event")
    with pytest.raises(InvalidInput):
        browsing.life_events(catalog_db, "aliens")
    fields = {f["code"]: f for f in browsing.fields_list(catalog_db)}
    assert len(fields) >= 8 and fields["ho_tich"]["procedures"] >= 10


def test_agencies_for_a_ward_and_a_province(catalog_db):
    ward = browsing.agencies_for(catalog_db, "1.001193", 51, 21220)
    assert [a["code"] for a in ward] == ["W21220-UBND"]
    assert ward[0]["name"] == "Ủy ban nhân dân xã Sơn Tịnh" and ward[0]["level"] == "commune"
    hanoi = browsing.agencies_for(catalog_db, "1.001193", 1, 4)
    assert [a["code"] for a in hanoi] == ["W00004-UBND"]
    all_qn = browsing.agencies_for(catalog_db, "1.001193", 51)
    assert len(all_qn) == 96 and {a["province_code"] for a in all_qn} == {51}
    justice = browsing.agencies_for(catalog_db, "2.000488", 1, 4)
    assert [a["code"] for a in justice] == ["P01-STP"]


def test_dissolved_agency_is_never_offered_its_successor_is(catalog_db):
    offered = browsing.agencies_for(catalog_db, "2.001611", 51)
    assert [a["code"] for a in offered] == ["P51-STC"]  # not P51-SKHDT, P62-STC, P62-SKHDT
    old = browsing.get_agency(catalog_db, "P62-SKHDT")
    assert old["status"] == "dissolved" and old["successor"] == "P62-STC"
    assert browsing.resolve_agency(catalog_db, "P62-SKHDT")["code"] == "P51-STC"
    assert browsing.resolve_agency(catalog_db, "H001-PTP")["code"] == "W00004-UBND"
    assert browsing.resolve_agency(catalog_db, "P51-STC")["code"] == "P51-STC"
    with pytest.raises(NotFound):
        browsing.resolve_agency(catalog_db, "NOPE")


@pytest.mark.parametrize("province,ward,code", [
    ("Quảng Ngãi", None, "invalid_province"),
    (51, 4, "ward_not_in_province"),  # Phường Ba Đình is in Hà Nội
    (62, None, "unknown_province"),  # Kon Tum: merged into Quảng Ngãi on 2025-07-01
    (51, 99998, "unknown_ward"),
    (None, "1e3", "invalid_ward"),
    (True, None, "invalid_province"),
    ("٥١", None, "invalid_province"),  # 51 in Arabic-Indic digits
    (51, -5, "invalid_ward"),
])
def test_agencies_for_a_place_that_does_not_exist_is_refused(catalog_db, province, ward, code):
    with pytest.raises(InvalidInput) as err:
        browsing.agencies_for(catalog_db, "1.001193", province, ward)
    assert err.value.code == code


def test_agencies_for_unknown_procedure_and_places_given_as_text(catalog_db):
    with pytest.raises(NotFound):
        browsing.agencies_for(catalog_db, "9.999999", 51)
    # a ward alone names its province; "01" and 1 are the same province
    assert [a["code"] for a in browsing.agencies_for(catalog_db, "1.001193", None, 21220)] == ["W21220-UBND"]
    assert [a["code"] for a in browsing.agencies_for(catalog_db, "1.001193", "01", "00004")] == ["W00004-UBND"]
    # a real province the seed has no offices for: only the central agencies would be offered
    assert browsing.agencies_for(catalog_db, "1.001193", 48) == []
    assert [a["code"] for a in browsing.agencies_for(catalog_db, "1.003214", 48)] == ["BCA"]


def test_list_agencies(catalog_db):
    result = browsing.list_agencies(catalog_db, "uy ban nhan dan xa son tinh")
    assert result["items"][0]["code"] == "W21220-UBND"
    qn = browsing.list_agencies(catalog_db, province=51, level="province", page_size=100)
    seeded = [a["code"] for a in qn["items"] if a["code"].startswith("P51-")]
    assert len(seeded) == 12 and all(a["status"] == "active" for a in qn["items"])
    assert qn["total"] == len(qn["items"])
    with_old = browsing.list_agencies(catalog_db, province=51, level="province", include_dissolved=True, page_size=100)
    assert with_old["total"] > qn["total"]


def test_every_seed_procedure_has_an_agency_in_both_provinces(catalog_db):
    from services.catalog import seed_data

    for doc in seed_data.procedures():
        for province, ward in ((51, 21220), (1, 4)):
            offered = browsing.agencies_for(catalog_db, doc["code"], province, ward)
            assert offered, (doc["code"], province)
            assert all(a["status"] == "active" for a in offered)


@pytest.mark.parametrize("q,first", [
    ("thủ tục cấp hộ chiếu", "1.003214"),  # filler words around what is looked for
    ("làm hộ chiếu", "1.003214"),
    ("xin giấy phép xây dựng", "1.009995"),
    ("cách làm thẻ căn cước như thế nào", "1.012346"),
    ("dang ki khai sinh", "1.001193"),  # "kí" is a common spelling of "ký"
    ("dang ky ket hon voi nguoi nuoc ngoai", "1.000806"),  # "với người" in no text: most of the words
])
def test_queries_as_people_type_them(catalog_db, q, first):
    assert codes(browsing.search(catalog_db, q, {}, 1, 5))[0] == first


def test_a_short_exact_name_beats_a_long_one_that_contains_it_even_with_a_typo(catalog_db):
    # 1.001005 / 1.000110 contain "đăng ký khai sinh" in a much longer name
    assert codes(browsing.search(catalog_db, "dang ky khai sinh", {}, 1, 1)) == ["1.001193"]
    assert codes(browsing.search(catalog_db, "dang ki khai sinh", {}, 1, 1)) == ["1.001193"]


def test_filler_words_alone_are_still_searched(catalog_db):
    assert "1.001124" in codes(browsing.search(catalog_db, "thủ tục", {}, 1, 10))


@pytest.mark.parametrize("q,first", [
    ("ho chiue", "1.003214"),  # two letters swapped
    ("dnag ky ket hon", "1.000894"),
    ("dang ky ket hun", "1.000894"),  # a vowel mistyped
    ("giay phep lai xee", "1.002805"),  # a letter doubled
    ("ly lich tu phpa", "2.000505"),
    ("the can cuok", "1.012346"),
])
def test_misspelt_words_are_corrected_against_the_catalog_s_own_words(catalog_db, q, first):
    assert codes(browsing.search(catalog_db, q, {}, 1, 5))[0] == first


def test_word_corrections_come_from_the_dictionary(catalog_db):
    with catalog_db.transaction() as cur:
        fixes = queries.word_corrections(cur, ["dang", "chiue", "sihn", "ki", "xyzzy", "a"])
    assert fixes == ["dang", "chieu", "sinh", "ky", None, None]


def test_nonsense_finds_nothing_rather_than_anything(catalog_db):
    assert browsing.search(catalog_db, "xyzzy qwerty", {}, 1, 5) == {"items": [], "total": 0, "page": 1,
                                                                    "page_size": 5}


def test_relaxed_and_corrected_searches_use_the_indexes(catalog_db):
    plan = _plan(catalog_db, *queries.search_sql("dang ky ket hon voi nguoi", {}, 20, 0, "relaxed"))
    assert "procedures_tsv" in plan


@pytest.mark.parametrize("procedure", ["1.001193", "2.000488", "2.001611", "1.000894"])
@pytest.mark.parametrize("province", [1, 51, 79])
def test_agencies_by_ward_answers_what_agencies_for_answers_for_every_ward(catalog_db, procedure, province):
    """The dossier service keeps one answer per procedure and province and reads each ward's
    agencies from it; for every ward of the province it must equal the per-place answer."""
    table = browsing.agencies_by_ward(catalog_db, procedure, str(province))
    assert table["province"] == province and table["procedure_code"] == procedure
    assert table["wards"] == [str(w["code"]) for w in browsing.wards(province)["wards"]]
    assert set(table["by_ward"]) <= set(table["wards"])
    for ward in table["wards"]:
        assembled = table["everywhere"] + table["by_ward"].get(ward, [])
        assert assembled == browsing.agencies_for(catalog_db, procedure, province, ward), ward


def test_agencies_by_ward_refuses_what_agencies_for_refuses(catalog_db):
    with pytest.raises(InvalidInput) as missing:
        browsing.agencies_by_ward(catalog_db, "1.001193", None)
    assert missing.value.code == "province_required"
    with pytest.raises(InvalidInput) as unknown:
        browsing.agencies_by_ward(catalog_db, "1.001193", 99)
    assert unknown.value.code == "unknown_province"
    with pytest.raises(InvalidInput):
        browsing.agencies_by_ward(catalog_db, "1.001193", "1; DROP TABLE agencies")
    for code in ("9.999999", "", None, "x" * 500):
        with pytest.raises(NotFound):
            browsing.agencies_by_ward(catalog_db, code, 1)


def test_agencies_by_ward_holds_the_communes_and_the_shared_offices_apart(catalog_db):
    communes = browsing.agencies_by_ward(catalog_db, "1.001193", 51)
    assert communes["everywhere"] == [] and len(communes["by_ward"]) == 96
    assert [a["code"] for a in communes["by_ward"]["21220"]] == ["W21220-UBND"]
    justice = browsing.agencies_by_ward(catalog_db, "2.000488", "01")
    assert [a["code"] for a in justice["everywhere"]] == ["P01-STP"] and justice["by_ward"] == {}


@pytest.mark.parametrize("province", [[1], {"a": 1}, True, 10 ** 30, -1, "1" * 5000, 1.5, "1.5"])
def test_agencies_by_ward_refuses_a_province_of_the_wrong_type_or_size(catalog_db, province):
    with pytest.raises(InvalidInput) as refused:
        browsing.agencies_by_ward(catalog_db, "1.001193", province)
    assert refused.value.code == "invalid_province"


@pytest.mark.parametrize("code", [123, ["1.001193"], {"x": 1}])
def test_agencies_by_ward_answers_a_procedure_code_of_the_wrong_type_as_unknown(catalog_db, code):
    with pytest.raises(NotFound):
        browsing.agencies_by_ward(catalog_db, code, 1)
