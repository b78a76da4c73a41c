"""Agencies: succession of dissolved ones, the unit an agency serves, amendments, and the
agency kinds (named after their level) that procedures are implemented by."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from portal_common.errors import Conflict, InvalidInput, NotFound

MAX_SUCCESSION = 20


def resolve_successor(code: str, successors: Mapping[str, str | None]) -> str:
    """Follow ``successor`` links from ``code`` to the agency that is still active.

    ``successors`` maps each dissolved agency to its successor. A loop or an over-long chain
    is a catalog error, refused rather than followed forever.
    """
    seen = [code]
    current = code
    while current in successors:
        nxt = successors[current]
        if nxt is None or nxt in seen or len(seen) > MAX_SUCCESSION:
            raise Conflict("succession_broken", f"The successor chain of {code} does not end.")
        seen.append(nxt)
        current = nxt
    return current


def check_dissolution(code: str, successor: str, successors: Mapping[str, str | None],
                      successor_exists: bool) -> str:
    """Refuse a dissolution that names no real successor or would make a loop; returns the
    active agency at the end of the new chain."""
    if successor == code:
        raise InvalidInput("invalid_successor", "An agency cannot succeed itself.")
    if not successor_exists:
        raise NotFound("successor_not_found", "The successor agency does not exist.")
    chain = dict(successors)
    chain[code] = successor
    return resolve_successor(code, chain)


def offered_agencies(candidates: Iterable[Mapping[str, Any]], successors: Mapping[str, str | None]
                     ) -> list[str]:
    """Codes to offer for the matching agencies: a dissolved one is replaced by its successor
    (never offered itself); order kept, duplicates dropped."""
    out: list[str] = []
    for agency in candidates:
        code = agency["code"]
        if agency.get("status") == "dissolved":
            code = resolve_successor(code, successors)
        if code not in out:
            out.append(code)
    return out


def changed_agency_fields(current: Mapping[str, Any], changes: Mapping[str, Any]) -> list[str]:
    if current["status"] == "dissolved":
        raise Conflict("agency_dissolved", "A dissolved agency cannot be amended.")
    changed = sorted(k for k, v in changes.items() if current.get(k) != v)
    if not changed:
        raise InvalidInput("nothing_changed", "The amendment changes nothing.")
    return changed


def check_agency_unit(level: str, province: int | None, ward: int | None) -> None:
    """The unit an agency serves must fit its level: a commune office serves a ward, a
    province (or former district) office a province; a ministry serves the whole country."""
    if level == "commune" and ward is None:
        raise InvalidInput("unit_required", "A commune-level agency names the ward it serves (ward_code).")
    if level in ("province", "district") and province is None:
        raise InvalidInput("unit_required", "A province-level agency names its province (province_code).")
    if level == "central" and (province is not None or ward is not None):
        raise InvalidInput("invalid_unit", "A central agency serves the whole country: no province or ward.")


LEVELS = ("central", "province", "commune")

KIND_LABELS = {
    "central_public_security": "Bộ Công an",
    "central_justice": "Bộ Tư pháp",
    "central_finance": "Bộ Tài chính",
    "central_construction": "Bộ Xây dựng",
    "central_agriculture_environment": "Bộ Nông nghiệp và Môi trường",
    "central_home_affairs": "Bộ Nội vụ",
    "central_health": "Bộ Y tế",
    "central_social_insurance": "Bảo hiểm xã hội Việt Nam",
    "central_foreign_affairs": "Bộ Ngoại giao",
    "province_people_committee": "Ủy ban nhân dân tỉnh / thành phố",
    "province_justice": "Sở Tư pháp",
    "province_finance": "Sở Tài chính (Phòng Đăng ký kinh doanh)",
    "province_construction": "Sở Xây dựng",
    "province_agriculture_environment": "Sở Nông nghiệp và Môi trường",
    "province_land_registration": "Văn phòng Đăng ký đất đai",
    "province_home_affairs": "Sở Nội vụ",
    "province_health": "Sở Y tế",
    "province_education": "Sở Giáo dục và Đào tạo",
    "province_industry_trade": "Sở Công Thương",
    "province_culture": "Sở Văn hóa, Thể thao và Du lịch",
    "province_police": "Công an tỉnh / thành phố",
    "province_social_insurance": "Bảo hiểm xã hội tỉnh / thành phố",
    "province_tax": "Thuế tỉnh / thành phố",
    "commune_people_committee": "Ủy ban nhân dân xã / phường",
    "commune_police": "Công an xã / phường",
}


def level_of_kind(kind: str) -> str | None:
    """Agency kinds are named after their level (``province_justice``)."""
    prefix = kind.split("_", 1)[0]
    return prefix if prefix in LEVELS else None


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)
