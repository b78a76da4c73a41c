"""Catalog rules in plain Python (no I/O): versions, succession, search input, pages.

The search itself runs in PostgreSQL (see repository.py); this module decides what is asked
of it and what an editor's change means for the catalog and its event log.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from portal_common.errors import Conflict, InvalidInput, NotFound

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
MAX_QUERY = 200
MAX_PAGE_SIZE = 100
MAX_SUCCESSION = 20


def valid_code(code: Any) -> bool:
    """Codes are short ASCII identifiers; anything else cannot name a catalog entry."""
    return isinstance(code, str) and bool(CODE_RE.match(code))


def fold(text: str) -> str:
    """Case- and diacritic-free text, like SQL ``fold()`` (used to explain, not to search)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn").lower()


def normalise_query(q: str | None) -> str | None:
    """Collapse whitespace; refuse control characters and over-long queries."""
    if q is None:
        return None
    if not isinstance(q, str):
        raise InvalidInput("invalid_query", "The search text must be a string.")
    if any(unicodedata.category(ch) == "Cc" for ch in q):
        raise InvalidInput("invalid_query", "Control characters are not allowed in the search text.")
    q = " ".join(q.split())
    if len(q) > MAX_QUERY:
        raise InvalidInput("query_too_long", f"The search text is limited to {MAX_QUERY} characters.")
    return q or None


# Words people put around what they look for ("thủ tục xin cấp hộ chiếu như thế nào"),
# folded; dropped from the ends of a query as long as something is left.
LEADING_FILLERS = (("thu", "tuc"), ("huong", "dan"), ("xin",), ("lam",), ("cach",), ("muon",))
TRAILING_FILLERS = (("nhu", "the", "nao"), ("the", "nao"), ("o", "dau"), ("can", "gi"))


_PUNCTUATION = string.punctuation + "“”‘’…–—"


def search_terms(q: str) -> str:
    """The words to search for: folded, stripped of surrounding punctuation, with filler
    words dropped from both ends."""
    words = [w for w in (w.strip(_PUNCTUATION) for w in fold(q).split()) if w]
    changed = True
    while changed:
        changed = False
        for filler in LEADING_FILLERS:
            if len(words) > len(filler) and tuple(words[:len(filler)]) == filler:
                words, changed = words[len(filler):], True
        for filler in TRAILING_FILLERS:
            if len(words) > len(filler) and tuple(words[-len(filler):]) == filler:
                words, changed = words[:-len(filler)], True
    return " ".join(words)


def corrected_terms(words: list[str], fixes: list[str | None]) -> str | None:
    """The query with each misspelt word replaced by its correction; None when nothing
    changed or a word has no correction (the fuzzy search takes over then)."""
    if len(words) != len(fixes) or None in fixes or list(fixes) == list(words):
        return None
    return " ".join(f for f in fixes if f is not None)


def correctable(word: str) -> bool:
    """Only plain words are spell-checked; numbers and codes are taken as typed."""
    return word.isascii() and word.isalpha()


@dataclass(frozen=True)
class Page:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_of(page: Any = 1, page_size: Any = 20) -> Page:
    """A bounded page request (the gateway validates too; RPC callers are checked here)."""
    try:
        page = 1 if page is None else int(page)
        page_size = 20 if page_size is None else int(page_size)
    except (TypeError, ValueError):
        raise InvalidInput("invalid_page", "page and page_size must be integers.") from None
    if page < 1 or page > 100_000 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput("invalid_page", f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}.")
    return Page(page, page_size)


def paginated(items: list[dict], total: int, page: Page) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page.page, "page_size": page.page_size}


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


def amended(current: Mapping[str, Any], changes: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The next version of a procedure: the changes applied, the list of what changed. A
    draft keeps its version number: it is rewritten, not versioned, until published."""
    if current["status"] == "withdrawn":
        raise Conflict("procedure_withdrawn", "A withdrawn procedure cannot be amended.")
    changed = sorted(k for k, v in changes.items() if current.get(k) != v)
    if not changed:
        raise InvalidInput("nothing_changed", "The amendment changes nothing.")
    doc = dict(current)
    doc.update(changes)
    doc["version"] = int(current["version"]) + (0 if current["status"] == "draft" else 1)
    return doc, changed


def changed_agency_fields(current: Mapping[str, Any], changes: Mapping[str, Any]) -> list[str]:
    if current["status"] == "dissolved":
        raise Conflict("agency_dissolved", "A dissolved agency cannot be amended.")
    changed = sorted(k for k, v in changes.items() if current.get(k) != v)
    if not changed:
        raise InvalidInput("nothing_changed", "The amendment changes nothing.")
    return changed


def amended_life_event(current: Mapping[str, Any], changes: Mapping[str, Any]
                       ) -> tuple[dict[str, Any], list[str]]:
    """The next version of a life event and what changed (a new order of the same procedures
    is a change); a retired one stays as it was retired."""
    if current["status"] == "retired":
        raise Conflict("life_event_retired", "A retired life event cannot be amended.")
    changed = sorted(k for k, v in changes.items() if current.get(k) != v)
    if not changed:
        raise InvalidInput("nothing_changed", "The amendment changes nothing.")
    return dict(current, **changes, version=int(current["version"]) + 1), changed


def unoffered_procedures(codes: list[str], statuses: Mapping[str, str]) -> list[dict[str, str]]:
    """One field error per listed procedure the catalog does not have or has withdrawn (every
    one of them, so the editor fixes the list at once); ``statuses`` maps the known codes."""
    errors = []
    for i, code in enumerate(codes):
        status = statuses.get(code)
        if status is None or status == "withdrawn":
            why = "is not in the catalog" if status is None else "has been withdrawn"
            errors.append({"field": f"procedure_codes[{i}]", "message": f"Procedure {code} {why}."})
    return errors


_APPLICANTS = {"citizen": "citizens", "business": "businesses"}


def mistargeted_procedures(codes: list[str], targets: Mapping[str, str], event_target: str) -> list[dict[str, str]]:
    """One field error per listed procedure meant only for the other kind of applicant: a
    business's life event lists procedures for businesses (or both), a citizen's for citizens."""
    errors = []
    for i, code in enumerate(codes):
        target = targets.get(code)
        if target is not None and target not in (event_target, "both"):
            errors.append({"field": f"procedure_codes[{i}]",
                           "message": f"Procedure {code} is for {_APPLICANTS[target]} only, "
                                      f"not for {_APPLICANTS.get(event_target, event_target)}."})
    return errors


def check_procedure(doc: Mapping[str, Any]) -> None:
    """The levels a procedure names are exactly those of the agency kinds that implement it
    (no district kinds: districts were abolished), so a search by level and the choice of
    agency agree."""
    kind_levels = {level_of_kind(k) for k in doc["agency_kinds"]}
    if None in kind_levels:
        raise InvalidInput("invalid_agency_kind", "Agency kinds are central_..., province_... or commune_....")
    if kind_levels != set(doc["levels"]):
        raise InvalidInput("levels_mismatch", "levels must be the levels of the agency kinds "
                           f"({', '.join(sorted(kind_levels))}).")


def check_agency_unit(level: str, province: int | None, ward: int | None) -> None:
    """The unit an agency serves must fit its level: a commune office serves a ward, a
    province (or former district) office a province; a ministry serves the whole country."""
    if level == "commune" and ward is None:
        raise InvalidInput("unit_required", "A commune-level agency names the ward it serves (ward_code).")
    if level in ("province", "district") and province is None:
        raise InvalidInput("unit_required", "A province-level agency names its province (province_code).")
    if level == "central" and (province is not None or ward is not None):
        raise InvalidInput("invalid_unit", "A central agency serves the whole country: no province or ward.")


def search_documents_text(doc: Mapping[str, Any]) -> str:
    """The texts besides the name that a keyword may match (ranked below name matches): the
    documents to bring and the documents received. The description repeats the name and the
    legal bases are citations; leaving them out keeps the index small and matches meaningful."""
    parts = [d.get("name", "") for d in doc.get("required_documents") or []]
    parts += list(doc.get("result_documents") or [])
    return " ".join(p for p in parts if p)[:20000]


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
