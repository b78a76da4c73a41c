"""The router's read models: the routing table, a dossier's deliveries, an agency's intake,
dead letters and the delivery counts (each given a cursor by the application)."""

from __future__ import annotations

from typing import Any

from services.router.repository import DELIVERY_COLUMNS


def list_routes(cur: Any) -> list[dict]:
    cur.execute("SELECT agency_code, channel, endpoint, secret_ref, active, updated_at "
                "FROM routes ORDER BY agency_code")
    return cur.fetchall()


def deliveries_for(cur: Any, dossier_code: str) -> list[dict]:
    cur.execute(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE dossier_code = %s "
                "ORDER BY created_at, delivery_id", (dossier_code,))
    return cur.fetchall()


def agency_deliveries(cur: Any, agency_code: str, status: str | None, dossier_code: str | None,
                      limit: int) -> list[dict]:
    """What was routed to one agency, newest first (its own view of its intake)."""
    cur.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE agency_code = %s "
        "AND (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR dossier_code = %s) "
        "ORDER BY created_at DESC, delivery_id LIMIT %s",
        (agency_code, status, status, dossier_code, dossier_code, limit),
    )
    return cur.fetchall()


def dead_letters(cur: Any, agency_code: str | None, limit: int) -> list[dict]:
    cur.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'dead' "
        "AND (%s::text IS NULL OR agency_code = %s) ORDER BY updated_at LIMIT %s",
        (agency_code, agency_code, limit),
    )
    return cur.fetchall()


def counts(cur: Any) -> dict[str, int]:
    cur.execute("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    return {r["status"]: r["n"] for r in cur.fetchall()}
