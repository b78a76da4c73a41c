"""Today's administrative units come from the vietnam-provinces package: 34 provinces, their
wards, no districts; a place that does not exist is refused with a clear error."""

import pytest

from portal_common.errors import InvalidInput, NotFound
from services.catalog import places, seed


def test_thirty_four_provinces_with_their_wards():
    provinces = places.provinces()
    assert len(provinces) == 34
    assert {p["code"] for p in provinces} >= {1, 51, 79}
    assert next(p for p in provinces if p["code"] == 51)["name"] == "Quảng Ngãi"
    assert 62 not in {p["code"] for p in provinces}  # Kon Tum, merged into Quảng Ngãi
    wards = places.wards_of(51)
    assert len(wards) == 96 and {w["province_code"] for w in wards} == {51}
    assert {"code": 21220, "name": "Xã Sơn Tịnh"}.items() <= next(w for w in wards if w["code"] == 21220).items()
    assert sum(len(places.wards_of(p["code"])) for p in provinces) > 3000


def test_province_lookup_accepts_padded_codes_and_refuses_unknown_ones():
    assert places.province("01")["name"] == "Thành phố Hà Nội"
    for bad in ("62", "0", "abc", "", None, "1" * 50, "%00"):
        with pytest.raises(NotFound):
            places.province(bad)


def test_check_place():
    assert places.check_place("51", "21220") == (51, 21220)
    assert places.check_place(None, 4) == (1, 4)
    assert places.check_place(None, None) == (None, None)
    with pytest.raises(InvalidInput) as err:
        places.check_place(1, 21220)
    assert err.value.code == "ward_not_in_province"


def test_seed_agencies_are_built_from_the_package():
    agencies = seed.agencies()
    wards = {w["code"]: w for p in seed.SEED_PROVINCES for w in places.wards_of(p)}
    communes = [a for a in agencies if a["level"] == "commune"]
    assert {a["ward_code"] for a in communes} == set(wards)  # every ward of both provinces
    for a in communes:
        assert a["ward_name"] == wards[a["ward_code"]]["name"]
        assert a["province_code"] == wards[a["ward_code"]]["province_code"]
