"""The catalog's reads: search, procedures and their history, agencies for a place, fields,
life events, and the administrative units. Each checks its input, reads in one
transaction and answers with the views of ``queries.py``."""

from __future__ import annotations

from typing import Any

from portal_common.contracts.catalog import AGENCY_LEVELS
from portal_common.db import Database
from portal_common.errors import InvalidInput, NotFound
from services.catalog import places, queries
from services.catalog import repository as repo
from services.catalog.domain.agencies import LEVELS, offered_agencies, resolve_successor
from services.catalog.domain.codes import valid_code
from services.catalog.domain.search import (
    correctable,
    corrected_terms,
    normalise_query,
    page_of,
    paginated,
    search_terms,
)


def search(db: Database, q: str | None, filters: dict[str, Any], page: Any, page_size: Any) -> dict:
    p = page_of(page, page_size)
    q = normalise_query(q)
    clean = {k: v for k, v in filters.items() if v not in (None, "")}
    for name, allowed in (("target", ("citizen", "business", "both")), ("level", LEVELS),
                          ("online", ("full", "partial", "none"))):
        if name in clean and clean[name] not in allowed:
            raise InvalidInput(f"invalid_{name}", f"{name} is one of {', '.join(allowed)}.")
    if "field" in clean and not isinstance(clean["field"], str):
        raise InvalidInput("invalid_field", "field is a field code.")
    if "agency" in clean and not valid_code(clean["agency"]):
        return paginated([], 0, p)
    with db.transaction() as cur:
        items, total = queries.search_procedures(cur, q, clean, p.page_size, p.offset,
                                                 search_terms(q) if q else None, _corrected)
    return paginated(items, total, p)


def _corrected(cur: Any, terms: str) -> str | None:
    """The search words with misspelt ones corrected against the catalog's own words."""
    words = terms.split()
    if not any(correctable(w) for w in words) or len(words) > 12:
        return None
    asked = [w for w in words if correctable(w)]
    fixes = dict(zip(asked, queries.word_corrections(cur, asked), strict=True))
    return corrected_terms(words, [fixes.get(w, w) for w in words])


def get_procedure(db: Database, code: Any, version: Any = None, include_draft: bool = False) -> dict:
    """One procedure. Without ``version``: the current one; a withdrawn procedure is
    ``NotFound("procedure_withdrawn")`` (not offered for new filing). With ``version``: that
    version as it was, whatever the procedure's status now (dossiers filed under it). A
    draft exists only for editors (``include_draft``)."""
    if not valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    with db.transaction() as cur:
        if version is None:
            row = repo.procedure_row(cur, code)
            if row is not None and row["status"] == "withdrawn":
                raise NotFound("procedure_withdrawn", "This procedure has been withdrawn.")
        else:
            try:
                version = int(version)
            except (TypeError, ValueError):
                raise InvalidInput("invalid_version", "version must be an integer.") from None
            row = queries.procedure_version(cur, code, version) if 0 < version < 2**31 else None
            current = repo.procedure_row(cur, code) if row is None else None
            if current is not None and (include_draft or current["status"] != "draft"):
                raise NotFound("version_not_found", "This procedure has no such version.")
        if row is None or (row["status"] == "draft" and not include_draft):
            raise NotFound("procedure_not_found", "No procedure has this code.")
        return queries.procedure_view(row, queries.life_events_of(cur, code))


def history(db: Database, code: Any, include_draft: bool = False) -> list[dict]:
    if not valid_code(code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    with db.transaction() as cur:
        rows = queries.procedure_history(cur, code)
    if not include_draft:
        rows = [r for r in rows if r["status"] != "draft"]
    if not rows:
        raise NotFound("procedure_not_found", "No procedure has this code.")
    for r in rows:
        r["recorded_at"] = r["recorded_at"].isoformat()
    return rows


def _published_kinds(cur: Any, procedure_code: Any) -> list[str]:
    """The agency kinds that implement a published procedure; NotFound for any other code."""
    row = repo.procedure_row(cur, procedure_code)
    if row is None or row["status"] != "published":
        raise NotFound("procedure_not_found", "No procedure has this code.")
    return row["document"]["agency_kinds"]


def agencies_for(db: Database, procedure_code: Any, province: Any = None, ward: Any = None) -> list[dict]:
    """The active agencies implementing a procedure for a place; a dissolved agency that
    would match is replaced by the active end of its successor chain. The place must exist
    today (a ward alone names its province); a made-up one is refused, not answered empty."""
    province_n, ward_n = places.check_place(province, ward)
    if not valid_code(procedure_code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    with db.transaction() as cur:
        candidates = queries.agencies_implementing(cur, _published_kinds(cur, procedure_code), province_n, ward_n)
        codes = offered_agencies(candidates, repo.successors(cur))
        agencies = queries.agencies_by_codes(cur, codes)
    return [queries.agency_view(a) for a in agencies if a["status"] == "active"]


def agencies_by_ward(db: Database, procedure_code: Any, province: Any) -> dict:
    """``agencies_for`` for every ward of a province at once, for a caller that keeps it:
    ``everywhere`` (the central and the province's agencies, for any of its wards),
    ``by_ward`` (a ward's own commune agencies, after those) and ``wards`` (the province's
    ward codes today). For each ward, ``everywhere + by_ward.get(ward, [])`` is what
    ``agencies_for(procedure_code, province, ward)`` answers."""
    province_n, _ = places.check_place(province, None)
    if province_n is None:
        raise InvalidInput("province_required", "A province code is required.")
    if not valid_code(procedure_code):
        raise NotFound("procedure_not_found", "No procedure has this code.")
    with db.transaction() as cur:
        candidates = queries.agencies_implementing_in_province(cur, _published_kinds(cur, procedure_code), province_n)
        successors = repo.successors(cur)
        shared = offered_agencies([c for c in candidates if c["level"] != "commune"], successors)
        communes: dict[int, list[dict]] = {}
        for c in candidates:
            if c["level"] == "commune":
                communes.setdefault(c["ward_code"], []).append(c)
        own = {ward: [code for code in offered_agencies(found, successors) if code not in shared]
               for ward, found in communes.items()}
        wanted = list(dict.fromkeys([*shared, *(code for codes in own.values() for code in codes)]))
        views = {a["code"]: queries.agency_view(a) for a in queries.agencies_by_codes(cur, wanted)
                 if a["status"] == "active"}
    return {"procedure_code": str(procedure_code), "province": province_n,
            "wards": [str(w["code"]) for w in places.wards_of(province_n)],
            "everywhere": [views[c] for c in shared if c in views],
            "by_ward": {str(ward): [views[c] for c in codes if c in views]
                        for ward, codes in own.items() if any(c in views for c in codes)}}


def get_agency(db: Database, code: Any) -> dict:
    if not valid_code(code):
        raise NotFound("agency_not_found", "No agency has this code.")
    with db.transaction() as cur:
        row = repo.agency(cur, code)
    if row is None:
        raise NotFound("agency_not_found", "No agency has this code.")
    return queries.agency_view(row)


def resolve_agency(db: Database, code: Any) -> dict:
    """The active agency a dossier addressed to ``code`` must reach."""
    if not valid_code(code):
        raise NotFound("agency_not_found", "No agency has this code.")
    with db.transaction() as cur:
        if repo.agency(cur, code) is None:
            raise NotFound("agency_not_found", "No agency has this code.")
        final = resolve_successor(code, repo.successors(cur))
        return queries.agency_view(repo.agency(cur, final))


def list_agencies(db: Database, q: Any = None, province: Any = None, level: Any = None,
                  include_dissolved: bool = False, page: Any = 1, page_size: Any = 20) -> dict:
    p = page_of(page, page_size)
    q = normalise_query(q)
    if level not in (None, "", *AGENCY_LEVELS):
        raise InvalidInput("invalid_level", "Unknown level.")
    with db.transaction() as cur:
        rows, total = queries.search_agencies(cur, q, places.check_place(province, None)[0], level or None,
                                              bool(include_dissolved), p.page_size, p.offset)
    return paginated([queries.agency_view(r) for r in rows], total, p)


def fields_list(db: Database) -> list[dict]:
    with db.transaction() as cur:
        return queries.list_fields(cur)


def life_events(db: Database, target: Any = None) -> list[dict]:
    if target not in (None, "", "citizen", "business"):
        raise InvalidInput("invalid_target", "target is citizen or business.")
    with db.transaction() as cur:
        return queries.list_life_events(cur, target or None)


def life_event(db: Database, event_id: Any) -> dict:
    """One life event and its published procedures in order; a retired one is
    ``NotFound("life_event_retired")`` (no longer offered for browsing)."""
    if not valid_code(event_id):
        raise NotFound("life_event_not_found", "No life event has this id.")
    with db.transaction() as cur:
        return queries.life_event_view(queries.life_event(cur, event_id))


def provinces() -> list[dict]:
    return places.provinces()


def wards(province_code: Any) -> dict:
    """A province and its wards / communes (the places an applicant chooses from)."""
    return dict(places.province(province_code), wards=places.wards_of(province_code))
