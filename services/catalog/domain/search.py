"""What a search asks of PostgreSQL (the SQL itself is in ``queries.py``): the query text
normalised, filler words dropped, misspelt words corrected, the texts a keyword may match,
and bounded pages."""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal_common.errors import InvalidInput

MAX_QUERY = 200
MAX_PAGE_SIZE = 100


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


def search_documents_text(doc: Mapping[str, Any]) -> str:
    """The texts besides the name that a keyword may match (ranked below name matches): the
    documents to bring and the documents received. The description repeats the name and the
    legal bases are citations; leaving them out keeps the index small and matches meaningful."""
    parts = [d.get("name", "") for d in doc.get("required_documents") or []]
    parts += list(doc.get("result_documents") or [])
    return " ".join(p for p in parts if p)[:20000]
