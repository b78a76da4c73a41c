"""PostgreSQL access of the catalog (schema ``catalog``): reads, search, and the writes that
editors' commands make. Callers pass a cursor from ``Database.transaction()`` so a write and
its event append share one transaction.

Search folds case and diacritics with the SQL function ``fold()`` (unaccent + lower) and asks
two indexes: the weighted tsvector (every word, any order) and the trigram index on the
folded name (``<%``: a word-similarity match, which absorbs a small typo) when no procedure
has every word. Ranking: an exact code, then every word in the name, then every word in the
document texts; among equals the shorter name, the one closest to the query, first.
"""

from __future__ import annotations

import json
from typing import Any

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


def search_sql(q: str | None, filters: dict[str, Any], limit: int, offset: int,
               fuzzy: bool = False) -> tuple[str, dict]:
    """The search query and its arguments (also run bare by the benchmark).

    Words mode: every word of the query, in any order, in the name or the document texts
    (GIN on ``tsv``); name matches first, then the shorter (closer) name. Fuzzy mode, asked
    when no procedure has every word: names whose words are trigram-similar to the query
    (GIN trigram on ``search_name``), the most similar first: it absorbs a small typo.
    """
    where = ["p.status = 'published'"]
    args: dict[str, Any] = {"q": q, "limit": limit, "offset": offset}
    _filters(filters, where, args)
    if q and fuzzy:
        where.append("fold(%(q)s) <%% p.search_name")
        order = "word_similarity(fold(%(q)s), p.search_name) DESC, length(p.name), p.code"
    elif q:
        where.append("(p.tsv @@ plainto_tsquery('simple', fold(%(q)s)) OR p.code = %(q)s)")
        order = ("p.code = %(q)s DESC, p.name_tsv @@ plainto_tsquery('simple', fold(%(q)s)) DESC, "
                 "length(p.name), p.code")
    else:
        order = "p.field_code, p.name, p.code"
    sql = (
        f"SELECT {PROCEDURE_LIST_COLUMNS}, count(*) OVER () AS total "
        "FROM procedures p JOIN fields f ON f.code = p.field_code "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"
    )
    return sql, args


def _run_search(cur, q, filters, limit, offset, fuzzy) -> tuple[list[dict], int]:
    sql, args = search_sql(q, filters, limit, offset, fuzzy)
    if fuzzy:
        # The planner prices ``<%`` like a cheap operator, but on a sequential scan it builds
        # the trigrams of every name (~20 us a row); the trigram index is always cheaper.
        cur.execute("SET LOCAL enable_seqscan = off")
    cur.execute(sql, args)
    rows = [dict(r) for r in cur.fetchall()]
    total = rows[0]["total"] if rows else 0
    for r in rows:
        r.pop("total")
    if not rows and offset:
        count_sql, count_args = search_sql(q, filters, 1, 0, fuzzy)
        cur.execute(f"SELECT count(*) AS n FROM ({count_sql.split(' ORDER BY ')[0]}) s", count_args)
        total = cur.fetchone()["n"]
    return rows, total


def search_procedures(cur, q: str | None, filters: dict[str, Any], limit: int, offset: int
                      ) -> tuple[list[dict], int]:
    """Word matches; when there are none, the typo-tolerant fuzzy matches."""
    rows, total = _run_search(cur, q, filters, limit, offset, fuzzy=False)
    if q and total == 0:
        rows, total = _run_search(cur, q, filters, limit, offset, fuzzy=True)
    return rows, total


def procedure_row(cur, code: str, for_update: bool = False) -> dict | None:
    """The current version: its document, status and field name."""
    cur.execute(
        "SELECT v.document, p.status, p.version, f.name AS field_name FROM procedures p "
        "JOIN procedure_versions v ON v.code = p.code AND v.version = p.version "
        "JOIN fields f ON f.code = p.field_code WHERE p.code = %s" + (" FOR UPDATE OF p" if for_update else ""),
        (code,),
    )
    row = cur.fetchone()
    return dict(row) if row else None


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
        "ON e.id = lp.life_event_id WHERE lp.procedure_code = %s ORDER BY e.id",
        (code,),
    )
    return [dict(r) for r in cur.fetchall()]


def field_exists(cur, code: str) -> bool:
    cur.execute("SELECT 1 FROM fields WHERE code = %s", (code,))
    return cur.fetchone() is not None


_TSV = ("setweight(to_tsvector('simple', fold(%(name)s)), 'A') "
        "|| setweight(to_tsvector('simple', fold(%(search_docs)s)), 'B')")


def save_procedure(cur, doc: dict, search_docs: str, new: bool) -> None:
    """Insert or update the current version and record it in the history."""
    values = {
        "code": doc["code"], "version": doc["version"], "name": doc["name"],
        "field_code": doc["field"], "target": doc["target"], "levels": list(doc["levels"]),
        "agency_kinds": list(doc["agency_kinds"]), "online_level": doc["online_level"],
        "processing_days": doc["processing_days"], "status": doc["status"],
        "document": json.dumps(doc, ensure_ascii=False), "search_docs": search_docs,
    }
    if new:
        cur.execute(
            "INSERT INTO procedures (code, version, name, field_code, target, levels, agency_kinds, "
            "online_level, processing_days, status, tsv) VALUES (%(code)s, "
            "%(version)s, %(name)s, %(field_code)s, %(target)s, %(levels)s, %(agency_kinds)s, "
            f"%(online_level)s, %(processing_days)s, %(status)s, {_TSV})",
            values,
        )
    else:
        cur.execute(
            "UPDATE procedures SET version = %(version)s, name = %(name)s, field_code = %(field_code)s, "
            "target = %(target)s, levels = %(levels)s, agency_kinds = %(agency_kinds)s, "
            "online_level = %(online_level)s, processing_days = %(processing_days)s, "
            f"status = %(status)s, tsv = {_TSV} WHERE code = %(code)s",
            values,
        )
    cur.execute(
        "INSERT INTO procedure_versions (code, version, status, document) "
        "VALUES (%(code)s, %(version)s, %(status)s, %(document)s) "
        "ON CONFLICT (code, version) DO UPDATE SET status = EXCLUDED.status, document = EXCLUDED.document",
        values,
    )


# -- fields and life events ------------------------------------------------------------

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
        "WHERE %(t)s::text IS NULL OR e.target = %(t)s GROUP BY e.id ORDER BY e.target, e.id",
        {"t": target},
    )
    return [dict(r) for r in cur.fetchall()]


def life_event(cur, event_id: str) -> dict | None:
    cur.execute("SELECT id, name, target, description FROM life_events WHERE id = %s", (event_id,))
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


# -- agencies --------------------------------------------------------------------------

AGENCY_COLUMNS = (
    "code, name, level, kind, parent_code, province_code, province_name, ward_code, ward_name, "
    "address, phone, email, status, successor_code AS successor, dissolved_on, version"
)


def agency(cur, code: str, for_update: bool = False) -> dict | None:
    cur.execute(f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE code = %s"
                + (" FOR UPDATE" if for_update else ""), (code,))
    row = cur.fetchone()
    return dict(row) if row else None


def successors(cur) -> dict[str, str]:
    """Every dissolved agency and its successor (a small table: merged units only)."""
    cur.execute("SELECT code, successor_code FROM agencies WHERE status = 'dissolved'")
    return {r["code"]: r["successor_code"] for r in cur.fetchall()}


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


def insert_agency(cur, a: dict) -> None:
    cur.execute(
        "INSERT INTO agencies (code, name, level, kind, parent_code, province_code, province_name, "
        "ward_code, ward_name, address, phone, email, status, successor_code, dissolved_on, version) "
        "VALUES (%(code)s, %(name)s, %(level)s, %(kind)s, %(parent_code)s, %(province_code)s, "
        "%(province_name)s, %(ward_code)s, %(ward_name)s, %(address)s, %(phone)s, %(email)s, "
        "%(status)s, %(successor)s, %(dissolved_on)s, %(version)s)",
        a,
    )


def update_agency(cur, a: dict) -> None:
    cur.execute(
        "UPDATE agencies SET name = %(name)s, level = %(level)s, kind = %(kind)s, "
        "parent_code = %(parent_code)s, province_code = %(province_code)s, "
        "province_name = %(province_name)s, ward_code = %(ward_code)s, ward_name = %(ward_name)s, "
        "address = %(address)s, phone = %(phone)s, email = %(email)s, status = %(status)s, "
        "successor_code = %(successor)s, dissolved_on = %(dissolved_on)s, version = %(version)s "
        "WHERE code = %(code)s",
        a,
    )
