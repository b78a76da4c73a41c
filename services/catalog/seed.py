"""Load the seed catalog (idempotent): fields, agencies of Hà Nội and Quảng Ngãi down to the
wards (from the ``vietnam-provinces`` package: today's 34 provinces, no districts), the 2025
mergers as dissolved agencies with successors, the procedures of ``seed_data`` and the life
events. Every entry added is also an event in the catalog's log (``AgencyRegistered``,
``AgencyDissolved``, ``ProcedurePublished``, ``LifeEventDefined``), so subscribers learn the
seed like any change.

Agency names and units are real (the package's official names); their contact details are
ILLUSTRATIVE: the address says so, the phone number is the province's area code + 3800000,
the e-mail is made from the office abbreviation and the province's name.

``load(dsn)`` adds only what is missing and runs in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vietnam_provinces import Province, VietNamDivisionType, Ward

from portal_common.db import Database
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent
from services.catalog import repository as repo
from services.catalog import seed_data
from services.catalog.domain.agencies import check_dissolution
from services.catalog.domain.search import search_documents_text

SEED_PROVINCES = (1, 51)  # Thành phố Hà Nội, Quảng Ngãi

CENTRAL = [
    ("BCA", "Bộ Công an", "central_public_security"),
    ("BTP", "Bộ Tư pháp", "central_justice"),
    ("BTC", "Bộ Tài chính", "central_finance"),
    ("BXD", "Bộ Xây dựng", "central_construction"),
    ("BNNMT", "Bộ Nông nghiệp và Môi trường", "central_agriculture_environment"),
    ("BNV", "Bộ Nội vụ", "central_home_affairs"),
    ("BYT", "Bộ Y tế", "central_health"),
    ("BHXHVN", "Bảo hiểm xã hội Việt Nam", "central_social_insurance"),
]

PROVINCE_OFFICES = [
    ("UBND", "Ủy ban nhân dân {p}", "province_people_committee"),
    ("STP", "Sở Tư pháp {p}", "province_justice"),
    ("STC", "Sở Tài chính {p}", "province_finance"),
    ("SXD", "Sở Xây dựng {p}", "province_construction"),
    ("SNNMT", "Sở Nông nghiệp và Môi trường {p}", "province_agriculture_environment"),
    ("VPDKDD", "Văn phòng Đăng ký đất đai {p}", "province_land_registration"),
    ("SNV", "Sở Nội vụ {p}", "province_home_affairs"),
    ("SYT", "Sở Y tế {p}", "province_health"),
    ("SGDDT", "Sở Giáo dục và Đào tạo {p}", "province_education"),
    ("CA", "Công an {p}", "province_police"),
    ("BHXH", "Bảo hiểm xã hội {p}", "province_social_insurance"),
    ("THUE", "Thuế {p}", "province_tax"),
]

# The 2025 reorganisation: (code, name, level, kind, province, successor, dissolved on).
# Listed so that a successor always comes before the agencies it succeeds.
_DISTRICT = ("district", "district_people_committee")
DISSOLVED = [
    ("P01-SKHDT", "Sở Kế hoạch và Đầu tư thành phố Hà Nội", "province", "province_finance", 1, "P01-STC", "2025-03-01"),
    ("P51-SKHDT", "Sở Kế hoạch và Đầu tư tỉnh Quảng Ngãi", "province", "province_finance", 51, "P51-STC", "2025-03-01"),
    ("P62-UBND", "Ủy ban nhân dân tỉnh Kon Tum", "province", "province_people_committee", 51, "P51-UBND", "2025-07-01"),
    ("P62-STC", "Sở Tài chính tỉnh Kon Tum", "province", "province_finance", 51, "P51-STC", "2025-07-01"),
    ("P62-SKHDT", "Sở Kế hoạch và Đầu tư tỉnh Kon Tum", "province", "province_finance", 51, "P62-STC", "2025-03-01"),
    ("H001-UBND", "Ủy ban nhân dân quận Ba Đình", *_DISTRICT, 1, "W00004-UBND", "2025-07-01"),
    ("H001-PTP", "Phòng Tư pháp quận Ba Đình", "district", "district_justice", 1, "H001-UBND", "2025-07-01"),
    ("H522-UBND", "Ủy ban nhân dân huyện Sơn Tịnh", *_DISTRICT, 51, "W21220-UBND", "2025-07-01"),
]


def _agency(code: str, name: str, level: str, kind: str, parent: str | None = None,
            province: Any = None, ward: Any = None, **extra: Any) -> dict:
    return {
        "code": code, "name": name, "level": level, "kind": kind, "parent_code": parent,
        "province_code": province.code.value if province else extra.pop("province_code", None),
        "province_name": province.name if province else None,
        "ward_code": ward.code.value if ward else None, "ward_name": ward.name if ward else None,
        "address": extra.get("address"), "phone": extra.get("phone"), "email": extra.get("email"),
        "status": "active", "successor": None, "dissolved_on": None, "version": 1,
    }


def _province_label(p: Any) -> str:
    return p.name if p.division_type != VietNamDivisionType.TINH else f"tỉnh {p.name}"


def _ward_label(w: Any) -> str:
    return w.name[0].lower() + w.name[1:]


def agencies() -> list[dict]:
    """Every seed agency (active ones first, in parent-before-child order)."""
    out = [_agency(code, name, "central", kind) for code, name, kind in CENTRAL]
    provinces = {p.code.value: p for p in Province.iter_all() if p.code.value in SEED_PROVINCES}
    wards = [w for w in Ward.iter_all() if w.province_code.value in SEED_PROVINCES]
    for pc, p in sorted(provinces.items()):
        label = _province_label(p)
        email_host = f"{p.codename.replace('_', '')}.gov.vn"
        for abbr, template, kind in PROVINCE_OFFICES:
            parent = None if abbr == "UBND" else f"P{pc:02d}-UBND"
            out.append(_agency(f"P{pc:02d}-{abbr}", template.format(p=label), "province", kind, parent,
                               p, address=f"Trụ sở {template.format(p=label)} (illustrative)",
                               phone=f"0{p.phone_code}3800000", email=f"{abbr.lower()}@{email_host}"))
    for w in sorted(wards, key=lambda w: w.code.value):
        pc = w.province_code.value
        base = f"W{w.code.value:05d}"
        out.append(_agency(f"{base}-UBND", f"Ủy ban nhân dân {_ward_label(w)}", "commune",
                           "commune_people_committee", f"P{pc:02d}-UBND", provinces[pc], w))
        out.append(_agency(f"{base}-CA", f"Công an {_ward_label(w)}", "commune", "commune_police",
                           f"P{pc:02d}-CA", provinces[pc], w))
    return out


def _append(store: EventStore, cur, stream: str, events: Iterable[NewEvent], ctx: EventContext,
            expected: int | None = 0) -> None:
    store.append(stream, expected, list(events), stream_type=stream.split("-", 1)[0], context=ctx,
                 cursor=cur.connection.cursor())


def load(dsn: str) -> None:
    """Add whatever of the seed catalog is missing."""
    db = Database(dsn, "catalog", size=1, application_name="catalog-seed")
    store = EventStore(db)
    ctx = EventContext(correlation_id="seed")
    try:
        with db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('catalog.seed'))")
            cur.execute(
                "INSERT INTO fields (code, name, sort_order) SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]) "
                "ON CONFLICT (code) DO NOTHING",
                ([c for c, _ in seed_data.FIELDS], [n for _, n in seed_data.FIELDS],
                 list(range(len(seed_data.FIELDS)))),
            )
            cur.execute("SELECT code FROM agencies")
            have = {r["code"] for r in cur.fetchall()}
            for a in agencies():
                if a["code"] not in have:
                    repo.insert_agency(cur, a)
                    _append(store, cur, f"agency-{a['code']}", [NewEvent("AgencyRegistered", a)], ctx)
            for code, name, level, kind, pc, successor, on in DISSOLVED:
                if code in have:
                    continue
                a = _agency(code, name, level, kind, province_code=pc)
                repo.insert_agency(cur, a)
                final = check_dissolution(code, successor, repo.successors(cur), True)
                repo.update_agency(cur, dict(a, status="dissolved", successor=successor, dissolved_on=on,
                                             version=2))
                _append(store, cur, f"agency-{code}", [
                    NewEvent("AgencyRegistered", a),
                    NewEvent("AgencyDissolved", {"code": code, "successor": successor, "resolved_successor": final,
                                                 "dissolved_on": on,
                                                 "reason": "Sắp xếp đơn vị hành chính năm 2025"}),
                ], ctx)
            cur.execute("SELECT code FROM procedures")
            have = {r["code"] for r in cur.fetchall()}
            for doc in seed_data.procedures():
                if doc["code"] in have:
                    continue
                doc = dict(doc, version=1, status="published")
                repo.save_procedure(cur, doc, search_documents_text(doc), new=True)
                _append(store, cur, f"procedure-{doc['code']}", [NewEvent("ProcedurePublished", doc)], ctx)
            cur.execute("SELECT id FROM life_events")
            have = {r["id"] for r in cur.fetchall()}
            for event_id, name, target, description, codes in seed_data.LIFE_EVENTS:
                if event_id in have:
                    continue
                doc = {"id": event_id, "name": name, "target": target, "description": description,
                       "procedure_codes": list(codes), "status": "active", "version": 1}
                repo.save_life_event(cur, doc, new=True)
                store.append(f"life-event-{event_id}", 0, [NewEvent("LifeEventDefined", doc)],
                             stream_type="life_event", context=ctx, cursor=cur.connection.cursor())
            repo.refresh_search_words(cur)
    finally:
        db.close()
