"""Read models of the catalog (schema ``catalog``): the search, procedure versions and
history, fields, life events and agencies, and the views callers get of them. Each function
is given a cursor by the application.

Search folds case and diacritics with the SQL function ``fold()`` (unaccent + lower) and
goes, until something is found: every word (the weighted tsvector's GIN index, any order);
every word after correcting the misspelt ones against ``search_words`` (the catalog's own
words); names trigram-similar to the query (the trigram GIN index on the folded name); at
least half of the words. Ranking: an exact code, then the names holding more of the words
(a name match beats a document match), then the shorter name; the trigram pass ranks by
likeness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal_common.contracts.catalog import fee_view
from portal_common.errors import NotFound
from services.catalog.domain.agencies import kind_label, level_of_kind
from services.catalog.repository import AGENCY_COLUMNS

PROCEDURE_LIST_COLUMNS = (
    "p.code, p.name, p.field_code AS field, f.name AS field_name, p.target, p.levels, "
    "p.online_level, p.processing_days, p.version"
)


def _filters(filters: dict[str, Any], where: list[str], args: dict[str, Any]) -> None:
    if filters.get("field"):
        where.append("p.field_code = %(field)s")
        args["field"] = filters["field"]
    target = filters.get("target")
    if target in ("citizen", "business"):
        where.append("p.target IN (%(target)s, 'both')")
        args["target"] = target
    elif target == "both":
        where.append("p.target = 'both'")
    if filters.get("level"):
        where.append("%(level)s = ANY (p.levels)")
        args["level"] = filters["level"]
    if filters.get("online"):
        where.append("p.online_level = %(online)s")
        args["online"] = filters["online"]
    if filters.get("agency"):
        where.append("p.agency_kinds && ARRAY(SELECT kind FROM agencies WHERE code = %(agency)s)")
        args["agency"] = filters["agency"]


MODES = ("words", "fuzzy", "relaxed")


def search_sql(q: str | None, filters: dict[str, Any], limit: int, offset: int,
               mode: str = "words", terms: str | None = None) -> tuple[str, dict]:
    """The search query and its arguments (also run bare by the benchmark). ``q`` is the
    text as typed (an exact code matches it); ``terms`` the words to look for (defaults to
    ``q``; the service drops filler words like "thủ tục" first).

    ``words``: every word, in any order, in the name or the document texts (GIN on ``tsv``);
    the names holding more of the words first (a name match beats a document match), then
    the shorter (closer) name. ``fuzzy``, asked when no procedure
    has every word: names trigram-similar to the words (GIN trigram on ``search_name``),
    ranked by the best-matching stretch of the name plus the whole name's likeness (so the
    short exact name beats a long one that merely contains it): absorbs a typo or a variant
    spelling ("ki" for "ký") and extra words. ``relaxed``, the last resort: at least half of
    the words, names with more of them first.
    """
    where = ["p.status = 'published'"]
    args: dict[str, Any] = {"q": q, "terms": terms or q, "limit": limit, "offset": offset}
    _filters(filters, where, args)
    source = "procedures p JOIN fields f ON f.code = p.field_code"
    extra = ""
    # how many of the words are in the name (in the name or documents): what deleting them
    # from the folded name's tsvector takes away
    words = "tsvector_to_array(to_tsvector('simple', fold(%(terms)s)))"
    in_name = f"(length(p.name_tsv) - length(ts_delete(p.name_tsv, {words})))"
    in_all = f"(length(p.tsv) - length(ts_delete(p.tsv, {words})))"
    if q and mode == "fuzzy":
        where.append("fold(%(terms)s) <%% p.search_name")
        order = ("word_similarity(fold(%(terms)s), p.search_name) + similarity(fold(%(terms)s), p.search_name) "
                 "DESC, length(p.name), p.code")
    elif q and mode == "relaxed":
        where.append("p.tsv @@ replace(plainto_tsquery('simple', fold(%(terms)s))::text, '&', '|')::tsquery")
        where.append(f"2 * {in_all} >= cardinality({words})")
        order = f"{in_name} DESC, {in_all} DESC, length(p.name), p.code"
    elif q:
        where.append("(p.tsv @@ plainto_tsquery('simple', fold(%(terms)s)) OR p.code = %(q)s)")
        order = f"p.code = %(q)s DESC, {in_name} DESC, length(p.name), p.code"
        extra = f", {in_name} AS _in_name"
    else:
        order = "p.field_code, p.name, p.code"
    sql = (
        f"SELECT {PROCEDURE_LIST_COLUMNS}{extra}, count(*) OVER () AS total FROM {source} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"
    )
    return sql, args


def _run_search(cur, q, terms, filters, limit, offset, mode) -> tuple[list[dict], int]:
    sql, args = search_sql(q, filters, limit, offset, mode, terms)
    if mode == "fuzzy":
        # The planner prices ``<%`` like a cheap operator, but on a sequential scan it builds
        # the trigrams of every name (~20 us a row); the trigram index is always cheaper.
        cur.execute("SET LOCAL enable_seqscan = off")
    cur.execute(sql, args)
    rows = [dict(r) for r in cur.fetchall()]
    total = rows[0]["total"] if rows else 0
    for r in rows:
        r.pop("total")
    if not rows and offset:
        count_sql, count_args = search_sql(q, filters, 1, 0, mode, terms)
        cur.execute(f"SELECT count(*) AS n FROM ({count_sql.split(' ORDER BY ')[0]}) s", count_args)
        total = cur.fetchone()["n"]
    return rows, total


def search_procedures(cur, q: str | None, filters: dict[str, Any], limit: int, offset: int,
                      terms: str | None = None, corrected: Callable[[Any, str], str | None] | None = None
                      ) -> tuple[list[dict], int]:
    """Word matches; when there are none, the word matches of the query with its misspelt
    words corrected (``corrected(cur, terms)``; kept when the best match has every corrected
    word in its name), then the typo-tolerant fuzzy matches, then the procedures with most
    of the words."""
    rows, total = _run_search(cur, q, terms, filters, limit, offset, "words")
    if not q or total:
        return _clean(rows), total
    fixed = corrected(cur, terms or q) if corrected else None
    if fixed:
        rows, total = _run_search(cur, q, fixed, filters, limit, offset, "words")
        if total and (not rows or rows[0]["_in_name"] == len(set(fixed.split()))):
            return _clean(rows), total
    for mode in MODES[1:]:
        rows, total = _run_search(cur, q, terms, filters, limit, offset, mode)
        if total:
            break
    return _clean(rows), total


def _clean(rows: list[dict]) -> list[dict]:
    for r in rows:
        r.pop("_in_name", None)
    return rows


def word_corrections(cur, words: list[str]) -> list[str | None]:
    """For each folded word: itself when the catalog has it, else the closest catalog word
    (fewest edits, two letters swapped counting as one: at most one per two letters and two
    in all; then a letter mistyped rather than left out; then the most trigrams shared; then
    the most frequent), or None when nothing is that close."""
    cur.execute(
        "SELECT coalesce((SELECT s.word FROM search_words s WHERE s.word = t.w), "
        " (SELECT c.word FROM (SELECT s.word, s.procedures, CASE WHEN s.letters = sorted_letters(t.w) "
        "    AND length(s.word) = length(t.w) THEN 1 ELSE levenshtein(t.w, s.word) END AS edits "
        "    FROM search_words s) c WHERE c.edits <= least(2, length(t.w) / 2) "
        "  ORDER BY c.edits, length(c.word) <> length(t.w), similarity(t.w, c.word) DESC, c.procedures DESC, "
        "  c.word LIMIT 1)"
        ") AS word FROM unnest(%s::text[]) WITH ORDINALITY AS t(w, n) ORDER BY t.n",
        (words,),
    )
    return [r["word"] for r in cur.fetchall()]


def procedure_version(cur, code: str, version: int) -> dict | None:
    cur.execute(
        "SELECT v.document, v.status, v.version, f.name AS field_name FROM procedure_versions v "
        "JOIN procedures p ON p.code = v.code JOIN fields f ON f.code = p.field_code "
        "WHERE v.code = %s AND v.version = %s",
        (code, version),
    )
    row = cur.fetchone()
    return dict(row) if row else None


def procedure_history(cur, code: str) -> list[dict]:
    cur.execute(
        "SELECT version, status, recorded_at, document->>'name' AS name, "
        "(document->>'processing_days')::int AS processing_days "
        "FROM procedure_versions WHERE code = %s ORDER BY version",
        (code,),
    )
    return [dict(r) for r in cur.fetchall()]


def life_events_of(cur, code: str) -> list[dict]:
    cur.execute(
        "SELECT e.id, e.name, e.target FROM life_event_procedures lp JOIN life_events e "
        "ON e.id = lp.life_event_id WHERE lp.procedure_code = %s AND e.status = 'active' ORDER BY e.id",
        (code,),
    )
    return [dict(r) for r in cur.fetchall()]


def list_fields(cur) -> list[dict]:
    cur.execute(
        "SELECT f.code, f.name, count(p.code) FILTER (WHERE p.status = 'published') AS procedures "
        "FROM fields f LEFT JOIN procedures p ON p.field_code = f.code "
        "GROUP BY f.code ORDER BY f.sort_order, f.code"
    )
    return [dict(r) for r in cur.fetchall()]


def list_life_events(cur, target: str | None) -> list[dict]:
    cur.execute(
        "SELECT e.id, e.name, e.target, e.description, count(lp.position) AS procedures "
        "FROM life_events e LEFT JOIN life_event_procedures lp ON lp.life_event_id = e.id "
        "WHERE e.status = 'active' AND (%(t)s::text IS NULL OR e.target = %(t)s) "
        "GROUP BY e.id ORDER BY e.target, e.id",
        {"t": target},
    )
    return [dict(r) for r in cur.fetchall()]


def life_event(cur, event_id: str) -> dict | None:
    """A life event with its published procedures in order (``status`` tells a retired one)."""
    cur.execute("SELECT id, name, target, description, status, version FROM life_events WHERE id = %s",
                (event_id,))
    row = cur.fetchone()
    if not row:
        return None
    event = dict(row)
    cur.execute(
        "SELECT lp.position, p.code, p.name, p.field_code AS field, p.online_level, p.processing_days, "
        "p.status FROM life_event_procedures lp JOIN procedures p ON p.code = lp.procedure_code "
        "WHERE lp.life_event_id = %s AND p.status = 'published' ORDER BY lp.position",
        (event_id,),
    )
    event["procedures"] = [dict(r) for r in cur.fetchall()]
    return event


def agencies_by_codes(cur, codes: list[str]) -> list[dict]:
    cur.execute(f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE code = ANY(%s)", (codes,))
    found = {r["code"]: dict(r) for r in cur.fetchall()}
    return [found[c] for c in codes if c in found]


def agencies_implementing(cur, kinds: list[str], province: int | None, ward: int | None) -> list[dict]:
    """Agencies of the given kinds serving the place (central ones serve everywhere)."""
    cur.execute(
        "SELECT code, status FROM agencies WHERE kind = ANY(%(kinds)s) AND ("
        " level = 'central'"
        " OR (level = 'province' AND (%(province)s::int IS NULL OR province_code = %(province)s))"
        " OR (level = 'commune' AND (%(province)s::int IS NULL OR province_code = %(province)s)"
        "     AND (%(ward)s::int IS NULL OR ward_code = %(ward)s)))"
        " ORDER BY array_position(ARRAY['central','province','commune'], level), province_code, "
        " ward_code, code LIMIT 500",
        {"kinds": kinds, "province": province, "ward": ward},
    )
    return [dict(r) for r in cur.fetchall()]


def agencies_implementing_in_province(cur, kinds: list[str], province: int) -> list[dict]:
    """Agencies of the given kinds serving some place of a province: the central ones, the
    province's and every commune's of it, in ``agencies_implementing``'s order (no limit: one
    province's offices)."""
    cur.execute(
        "SELECT code, status, level, ward_code FROM agencies WHERE kind = ANY(%(kinds)s) AND ("
        " level = 'central' OR (level IN ('province', 'commune') AND province_code = %(province)s))"
        " ORDER BY array_position(ARRAY['central','province','commune'], level), province_code, "
        " ward_code, code",
        {"kinds": kinds, "province": province},
    )
    return [dict(r) for r in cur.fetchall()]


def search_agencies(cur, q: str | None, province: int | None, level: str | None,
                    include_dissolved: bool, limit: int, offset: int) -> tuple[list[dict], int]:
    where, args = [], {"q": q, "province": province, "level": level, "limit": limit, "offset": offset}
    if not include_dissolved:
        where.append("status = 'active'")
    if province is not None:
        where.append("province_code = %(province)s")
    if level:
        where.append("level = %(level)s")
    order = "array_position(ARRAY['central','province','commune'], level), province_code, ward_code, code"
    if q:
        where.append("(search_name LIKE '%%' || fold(%(q)s) || '%%' OR fold(%(q)s) <%% search_name "
                     "OR code = %(q)s)")
        order = "word_similarity(fold(%(q)s), search_name) DESC, " + order
    cur.execute(
        f"SELECT {AGENCY_COLUMNS}, count(*) OVER () AS total FROM agencies "
        f"WHERE {' AND '.join(where) or 'true'} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s",
        args,
    )
    rows = [dict(r) for r in cur.fetchall()]
    total = rows[0]["total"] if rows else 0
    for r in rows:
        r.pop("total")
    if not rows and offset:
        cur.execute(f"SELECT count(*) AS n FROM agencies WHERE {' AND '.join(where) or 'true'}", args)
        total = cur.fetchone()["n"]
    return rows, total


# -- views ---------------------------------------------------------------------------


def agency_view(row: dict) -> dict:
    out = dict(row)
    if out.get("dissolved_on") is not None:
        out["dissolved_on"] = out["dissolved_on"].isoformat()
    return out


def procedure_view(row: dict, life_events: list[dict]) -> dict[str, Any]:
    """The full procedure as callers see it: the stored version plus its groupings."""
    doc = dict(row["document"])
    doc["status"] = row["status"]
    doc["fees"] = fee_view(doc.get("fees"), bool(doc.get("illustrative")))
    doc["field_name"] = row["field_name"]
    doc["life_events"] = life_events
    doc["agencies"] = [{"kind": k, "level": level_of_kind(k), "name": kind_label(k)}
                       for k in doc.get("agency_kinds", [])]
    return doc


def life_event_view(event: dict | None) -> dict:
    """A life event as callers see it (``life_event``'s row, refused when absent or retired)."""
    if event is None:
        raise NotFound("life_event_not_found", "No life event has this id.")
    if event.pop("status") == "retired":
        raise NotFound("life_event_retired", "This life event has been retired.")
    return event
