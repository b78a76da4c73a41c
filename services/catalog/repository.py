"""The catalog's write side in PostgreSQL (schema ``catalog``): procedures and their
versions, life events, agencies, and the dictionary of search words. Callers pass a cursor
from ``Database.transaction()`` so a write and its event append share one transaction. The
current rows (``procedure_row``, ``agency``, ``successors``) are read here too: the
application locks and checks them before a change. Read models are in ``queries.py``.
"""

from __future__ import annotations

import json


def refresh_search_words(cur) -> None:
    """Rebuild the dictionary from the published procedures (one writer at a time)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('catalog.search_words'))")
    cur.execute("DELETE FROM search_words")
    cur.execute("INSERT INTO search_words (word, procedures) SELECT word, ndoc "
                "FROM ts_stat('SELECT tsv FROM procedures WHERE status = ''published''')")


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


def field_exists(cur, code: str) -> bool:
    cur.execute("SELECT 1 FROM fields WHERE code = %s", (code,))
    return cur.fetchone() is not None


_TSV = ("setweight(to_tsvector('simple', fold(%(name)s)), 'A') "
        "|| setweight(to_tsvector('simple', fold(%(search_docs)s)), 'B')")


def save_procedure(cur, doc: dict, search_docs: str, new: bool, version_status: str | None = None) -> None:
    """Insert or update the current version and record it in the history (with
    ``version_status`` there when it differs: a draft withdrawn stays a draft in history,
    never offered)."""
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
        dict(values, status=version_status or values["status"]),
    )


def life_event_row(cur, event_id: str, for_update: bool = False) -> dict | None:
    """A life event as stored and published: every procedure code it lists, in order."""
    cur.execute(
        "SELECT e.id, e.name, e.target, e.description, e.status, e.version, "
        "coalesce((SELECT array_agg(lp.procedure_code ORDER BY lp.position) FROM life_event_procedures lp "
        "WHERE lp.life_event_id = e.id), '{}') AS procedure_codes FROM life_events e WHERE e.id = %s"
        + (" FOR UPDATE" if for_update else ""),
        (event_id,),
    )
    row = cur.fetchone()
    return dict(row, procedure_codes=list(row["procedure_codes"])) if row else None


def procedure_statuses_and_targets(cur, codes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The status and the target of each of ``codes`` the catalog has."""
    cur.execute("SELECT code, status, target FROM procedures WHERE code = ANY(%s)", (list(codes),))
    rows = cur.fetchall()
    return {r["code"]: r["status"] for r in rows}, {r["code"]: r["target"] for r in rows}


def save_life_event(cur, doc: dict, new: bool) -> None:
    """Insert or update a life event and replace its list of procedures (positions from 1)."""
    if new:
        cur.execute("INSERT INTO life_events (id, name, target, description, status, version) "
                    "VALUES (%(id)s, %(name)s, %(target)s, %(description)s, %(status)s, %(version)s)", doc)
    else:
        cur.execute("UPDATE life_events SET name = %(name)s, target = %(target)s, description = %(description)s, "
                    "status = %(status)s, version = %(version)s WHERE id = %(id)s", doc)
        cur.execute("DELETE FROM life_event_procedures WHERE life_event_id = %s", (doc["id"],))
    cur.execute(
        "INSERT INTO life_event_procedures (life_event_id, position, procedure_code) "
        "SELECT %s, t.n, t.code FROM unnest(%s::text[]) WITH ORDINALITY AS t(code, n)",
        (doc["id"], list(doc["procedure_codes"])),
    )


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
