"""Today's administrative units (34 provinces and their wards / communes; districts were
abolished on 2025-07-01), read from the ``vietnam-provinces`` package rather than typed by
hand. No I/O: the package ships its tables as Python data.

The catalog uses them to refuse a place that does not exist (an applicant's province / ward,
an agency's unit) with a clear error instead of an empty answer, to derive a ward's province,
and to let the portal offer the list of places to choose from.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from vietnam_provinces import Province, VietNamDivisionType, Ward

from portal_common.errors import InvalidInput, NotFound

MAX_CODE = 99_999


def _province_out(p: Province) -> dict[str, Any]:
    return {"code": p.code.value, "name": p.name, "division_type": _division(p.division_type),
            "codename": p.codename, "phone_code": p.phone_code}


def _ward_out(w: Ward) -> dict[str, Any]:
    return {"code": w.code.value, "name": w.name, "division_type": _division(w.division_type),
            "codename": w.codename, "province_code": w.province_code.value}


def _division(kind: VietNamDivisionType) -> str:
    """``thanh_pho_trung_uong``, ``tinh``, ``phuong``, ``xa``, ``dac_khu``: stable ASCII names."""
    return kind.name.lower()


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[int, dict], dict[int, dict], dict[int, list[dict]]]:
    provinces = {p.code.value: _province_out(p) for p in Province.iter_all()}
    wards = {w.code.value: _ward_out(w) for w in Ward.iter_all()}
    by_province: dict[int, list[dict]] = {code: [] for code in provinces}
    for ward in sorted(wards.values(), key=lambda w: w["code"]):
        by_province[ward["province_code"]].append(ward)
    return provinces, wards, by_province


def provinces() -> list[dict[str, Any]]:
    """The 34 provinces and centrally-run cities, by code."""
    return [dict(p) for _, p in sorted(_tables()[0].items())]


def _number(value: Any, name: str) -> int | None:
    """A numeric administrative code ("01", 1 and "1" are the same province)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or (isinstance(value, str) and not (value.isascii() and value.isdigit())) \
            or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"invalid_{name}", f"{name} must be a numeric administrative code.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid_{name}", f"{name} must be a numeric administrative code.") from None
    if not 0 < number <= MAX_CODE:
        raise InvalidInput(f"invalid_{name}", f"{name} is not an administrative code.")
    return number


def province(code: Any) -> dict[str, Any]:
    """One province; an unknown code is ``NotFound`` (this is a lookup by path)."""
    try:
        number = _number(code, "province")
    except InvalidInput:
        number = None
    found = _tables()[0].get(number) if number is not None else None
    if found is None:
        raise NotFound("province_not_found", "No province has this code (34 provinces since 2025-07-01).")
    return dict(found)


def wards_of(province_code: Any) -> list[dict[str, Any]]:
    """The wards and communes of one province, by code."""
    code = province(province_code)["code"]
    return [dict(w) for w in _tables()[2][code]]


def check_place(province_code: Any, ward_code: Any) -> tuple[int | None, int | None]:
    """Validate an applicant's place: both codes must exist today and the ward must lie in
    the province. A ward alone names its province. Returns ``(province, ward)`` as numbers."""
    provinces_, wards, _ = _tables()
    p, w = _number(province_code, "province"), _number(ward_code, "ward")
    if p is not None and p not in provinces_:
        raise InvalidInput("unknown_province", "No province has this code (34 provinces since 2025-07-01).")
    if w is None:
        return p, None
    ward = wards.get(w)
    if ward is None:
        raise InvalidInput("unknown_ward", "No ward or commune has this code.")
    if p is not None and ward["province_code"] != p:
        raise InvalidInput("ward_not_in_province", "This ward is not in the given province.")
    return ward["province_code"], w


def names_of(province_code: int | None, ward_code: int | None) -> tuple[str | None, str | None]:
    """The official names of a (checked) place, for an agency's record."""
    provinces_, wards, _ = _tables()
    p = provinces_.get(province_code) if province_code is not None else None
    w = wards.get(ward_code) if ward_code is not None else None
    return (p["name"] if p else None), (w["name"] if w else None)
