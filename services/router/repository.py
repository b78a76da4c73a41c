"""The router's write side (schema ``router``): agencies, routes, dossier holders, deliveries.

Functions take a cursor so the application puts several writes and the event append in one
transaction. Rows come back as dicts (``Database.transaction()`` default). The lists that
operators and agencies read are in ``queries.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from portal_common import jsoncodec
from portal_common.prepared import Prepared
from services.router.domain.routing import Route

DELIVERY_COLUMNS = (
    "delivery_id, dossier_code, agency_code, addressed_to, event_id, event_type, channel, body, "
    "status, attempts, next_attempt_at, last_error, created_at, updated_at, sent_at"
)

# -- what a batch of dossier events reads --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchReads:
    """Everything routing and feeding a batch of dossier events read before they write, read
    in one round trip (``read_batch``).

    ``claimed``: per consumer, the event ids it had not handled before (now claimed);
    ``dossiers``: the rows of the dossiers asked about that exist, locked for update (the
    holder's ``agency_code`` and ``stream_version`` beside the feed's attributes); ``codes``:
    the dossiers asked about; ``successors``: every agency's successor; ``routes``: the route
    of each agency in ``agencies`` (None: it has none), which holds the agencies named, their
    successors and the dossiers' holders; ``held``: the dossiers with a feed event held;
    ``subscribed``: which of ``agencies`` have an active subscription."""

    claimed: dict[str, set[str]]
    dossiers: dict[str, dict]
    codes: frozenset[str]
    successors: dict[str, str | None]
    routes: dict[str, Route | None]
    held: set[str]
    subscribed: set[str]

    @property
    def agencies(self) -> frozenset[str]:
        return frozenset(self.routes)


_BATCH_READS = Prepared(
    "WITH claimed AS ("
    " INSERT INTO processed_events (consumer, event_id)"
    " SELECT c, e FROM unnest(%(consumers)s::text[], %(events)s::uuid[]) AS u(c, e)"
    " ON CONFLICT DO NOTHING RETURNING consumer, event_id),"
    " locked AS ("
    " SELECT code, agency_code, stream_version, procedure_code, field, province_code, status, fed_version"
    " FROM dossiers WHERE code = ANY(%(codes)s::text[]) ORDER BY code FOR UPDATE),"
    " asked AS ("
    " SELECT unnest(%(agencies)s::text[]) AS agency"
    " UNION SELECT successor FROM agencies WHERE code = ANY(%(agencies)s::text[]) AND successor IS NOT NULL"
    " UNION SELECT agency_code FROM locked)"
    " SELECT"
    " (SELECT COALESCE(json_agg(json_build_array(consumer, event_id)), '[]') FROM claimed) AS claimed,"
    " (SELECT COALESCE(json_agg(locked), '[]') FROM locked) AS dossiers,"
    " (SELECT COALESCE(json_object_agg(code, successor), '{}') FROM agencies WHERE successor IS NOT NULL)"
    " AS successors,"
    " (SELECT COALESCE(json_agg(agency), '[]') FROM asked WHERE agency IS NOT NULL) AS asked,"
    " (SELECT COALESCE(json_agg(r), '[]') FROM (SELECT agency_code, channel, endpoint, secret_ref, active"
    " FROM routes WHERE agency_code IN (SELECT agency FROM asked)) r) AS routes,"
    " (SELECT COALESCE(json_agg(DISTINCT dossier_code), '[]') FROM feed_held"
    " WHERE dossier_code = ANY(%(codes)s::text[])) AS held,"
    " (SELECT COALESCE(json_agg(DISTINCT agency_code), '[]') FROM subscriptions"
    " WHERE state = 'active' AND agency_code IN (SELECT agency FROM asked)) AS subscribed")


def read_batch(cur: Any, claims: dict[str, list[str]], codes: list[str], agencies: list[str]) -> BatchReads:
    """Claim the events for their consumers (``claims``: consumer to canonical event ids) and
    read what routing and feeding them needs (``BatchReads``), in one statement: one round
    trip where it took seven (the claims, the holders, the successors, a route per agency, the
    attributes, the held events, and the subscriptions' run after the commit)."""
    pairs = sorted({(consumer, event_id) for consumer, ids in claims.items() for event_id in ids})
    cur.execute(_BATCH_READS, {"consumers": [c for c, _ in pairs], "events": [e for _, e in pairs],
                               "codes": sorted(set(codes)), "agencies": sorted(set(agencies))})
    row = cur.fetchone()
    claimed: dict[str, set[str]] = {consumer: set() for consumer in claims}
    for consumer, event_id in row["claimed"]:
        claimed[consumer].add(str(event_id))
    routes: dict[str, Route | None] = dict.fromkeys(row["asked"])
    for route in row["routes"]:
        routes[route["agency_code"]] = Route(**route)
    return BatchReads(claimed, {d["code"]: d for d in row["dossiers"]}, frozenset(codes), row["successors"],
                      routes, set(row["held"]), set(row["subscribed"]))


# -- agencies (local copy of the catalog) ------------------------------------------------


def upsert_agency(cur: Any, code: str, name: str | None, status: str, successor: str | None,
                  stream_version: int) -> int:
    """Apply catalog news about an agency unless a later version was applied already; 1 when
    the row changed."""
    cur.execute(
        "INSERT INTO agencies (code, name, status, successor, stream_version) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (code) DO UPDATE SET name = coalesce(EXCLUDED.name, agencies.name), "
        "status = EXCLUDED.status, successor = EXCLUDED.successor, "
        "stream_version = EXCLUDED.stream_version, updated_at = now() "
        "WHERE agencies.stream_version < EXCLUDED.stream_version",
        (code, name, status, successor, stream_version),
    )
    return cur.rowcount


def agency_versions(cur: Any, codes: list[str]) -> dict[str, int]:
    """The version of each agency of ``codes`` in the local copy (0: learnt over RPC)."""
    cur.execute(Prepared("SELECT code, stream_version FROM agencies WHERE code = ANY(%s)"), (list(codes),))
    return {r["code"]: r["stream_version"] for r in cur.fetchall()}


def ensure_agency(cur: Any, code: str, status: str, successor: str | None) -> None:
    """Record an agency learnt from the catalog's RPC unless events already told us about it."""
    cur.execute("INSERT INTO agencies (code, status, successor) VALUES (%s, %s, %s) "
                "ON CONFLICT (code) DO NOTHING", (code, status, successor))


def successors(cur: Any) -> dict[str, str | None]:
    cur.execute(Prepared("SELECT code, successor FROM agencies WHERE successor IS NOT NULL"))
    return {r["code"]: r["successor"] for r in cur.fetchall()}


def known_agencies(cur: Any, codes: list[str]) -> set[str]:
    """Which of ``codes`` the local copy has."""
    cur.execute(Prepared("SELECT code FROM agencies WHERE code = ANY(%s)"), (list(codes),))
    return {r["code"] for r in cur.fetchall()}


def get_agency(cur: Any, code: str) -> dict | None:
    cur.execute(Prepared("SELECT code, name, status, successor FROM agencies WHERE code = %s"), (code,))
    return cur.fetchone()


# -- routes --------------------------------------------------------------------------------


def get_route(cur: Any, agency_code: str) -> Route | None:
    cur.execute(
        Prepared("SELECT agency_code, channel, endpoint, secret_ref, active FROM routes WHERE agency_code = %s"),
        (agency_code,),
    )
    row = cur.fetchone()
    return Route(**row) if row else None


def save_route(cur: Any, route: Route) -> None:
    cur.execute(
        "INSERT INTO routes (agency_code, channel, endpoint, secret_ref, active) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (agency_code) DO UPDATE SET "
        "channel = EXCLUDED.channel, endpoint = EXCLUDED.endpoint, "
        "secret_ref = EXCLUDED.secret_ref, active = EXCLUDED.active, updated_at = now()",
        (route.agency_code, route.channel, route.endpoint, route.secret_ref, route.active),
    )


# -- dossiers ------------------------------------------------------------------------------


def dossier_holder(cur: Any, code: str) -> str | None:
    cur.execute(Prepared("SELECT agency_code FROM dossiers WHERE code = %s"), (code,))
    row = cur.fetchone()
    return row["agency_code"] if row else None


def dossier_holders(cur: Any, codes: list[str]) -> dict[str, tuple[str, int]]:
    """The holding agency and the version that set it, of each dossier of ``codes`` known here."""
    if not codes:
        return {}
    cur.execute(Prepared("SELECT code, agency_code, stream_version FROM dossiers WHERE code = ANY(%s)"), (list(codes),))
    return {r["code"]: (r["agency_code"], r["stream_version"]) for r in cur.fetchall()}


def set_dossier_holder(cur: Any, code: str, agency_code: str, stream_version: int) -> None:
    """Move the dossier to ``agency_code`` unless a later dossier event moved it already."""
    cur.execute(Prepared(
        "INSERT INTO dossiers (code, agency_code, stream_version) VALUES (%s, %s, %s) "
        "ON CONFLICT (code) DO UPDATE SET agency_code = EXCLUDED.agency_code, "
        "stream_version = EXCLUDED.stream_version, updated_at = now() "
        "WHERE dossiers.stream_version < EXCLUDED.stream_version"),
        (code, agency_code, stream_version),
    )


# -- deliveries ----------------------------------------------------------------------------


def schedule_deliveries(writes: Any, rows: list[dict], lease_s: float | None, streams: list[str],
                        events: list[str]) -> None:
    """Queue in ``writes`` (a ``StatementBatch``) the insert of the pending deliveries ``rows``
    (leased for ``lease_s`` seconds when given, their first attempt then counted as for
    ``lease``; a row that exists already, a duplicate event, is left as it is) with each new
    row's ``DeliveryScheduled`` (``events[i]`` appended to ``streams[i]``), in one statement
    (migration 004), and the read of which rows were new: ``scheduled_ids(writes.after_row)``
    once ``writes`` is sent."""
    payload = jsoncodec.dumps([{k: r[k] for k in _SCHEDULED_FIELDS} for r in rows]).decode()
    writes.execute(Prepared("SELECT schedule_deliveries(%s::jsonb, %s::float8, %s::text[], %s::text[])"),
                   (payload, lease_s, streams, events))
    writes.read_after("SELECT current_setting('router.scheduled', true)")


_SCHEDULED_FIELDS = ("delivery_id", "dossier_code", "agency_code", "addressed_to", "event_id", "event_type",
                     "channel", "body")


def scheduled_ids(row: Any) -> set[str]:
    """The delivery ids ``schedule_deliveries`` inserted, from the row its read gave back (on
    the batch's plain cursor: a tuple)."""
    return {part for part in ((row[0] if row is not None else None) or "").split(",") if part}


def lease(cur: Any, delivery_id: str, lease_s: float) -> dict | None:
    """Claim a due pending delivery for one attempt (no other worker or process takes it
    until the lease runs out, so a crashed attempt is retried by someone else later).

    The attempt is counted here, before anything is sent: a send whose outcome could not be
    recorded (the database went away) still counts, and the next try is numbered after it."""
    cur.execute(Prepared(
        f"UPDATE deliveries SET lease_until = now() + %s::float8 * interval '1 second', attempts = attempts + 1 "
        f"WHERE delivery_id = %s AND status = 'pending' AND next_attempt_at <= now() "
        f"AND (lease_until IS NULL OR lease_until < now()) RETURNING {DELIVERY_COLUMNS}"),
        (lease_s, delivery_id),
    )
    return cur.fetchone()


def due(cur: Any, limit: int) -> list[str]:
    cur.execute(Prepared(
        "SELECT delivery_id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now() "
        "AND (lease_until IS NULL OR lease_until < now()) ORDER BY next_attempt_at LIMIT %s"),
        (limit,),
    )
    return [str(r["delivery_id"]) for r in cur.fetchall()]


def mark_sent(cur: Any, delivery_id: str, channel: str, attempts: int, acknowledged: bool) -> str | None:
    """Record a successful attempt; returns the status before (an agency may have confirmed
    the delivery already: it keeps that status)."""
    cur.execute(Prepared("SELECT status FROM deliveries WHERE delivery_id = %s FOR UPDATE"), (delivery_id,))
    before = cur.fetchone()
    cur.execute(Prepared(
        "UPDATE deliveries SET status = CASE WHEN status = 'acknowledged' THEN status ELSE %s END, "
        "channel = %s, attempts = %s, sent_at = now(), "
        "lease_until = NULL, last_error = NULL, updated_at = now() WHERE delivery_id = %s"),
        ("acknowledged" if acknowledged else "sent", channel, attempts, delivery_id),
    )
    return before["status"] if before else None


def mark_sent_many(cur: Any, sent: list[tuple[str, int]], channel: str) -> None:
    """``mark_sent`` (not acknowledged) for several deliveries, ``(delivery_id, attempts)``
    each, in one statement (``cur`` may be a ``StatementBatch``)."""
    ordered = sorted(sent)
    cur.execute(Prepared(
        "UPDATE deliveries d SET status = CASE WHEN d.status = 'acknowledged' THEN d.status ELSE 'sent' END, "
        "channel = %s, attempts = v.attempts, sent_at = now(), lease_until = NULL, last_error = NULL, "
        "updated_at = now() FROM unnest(%s::uuid[], %s::int[]) AS v(delivery_id, attempts) "
        "WHERE d.delivery_id = v.delivery_id"),
        (channel, [d for d, _ in ordered], [a for _, a in ordered]),
    )


def mark_acknowledged(cur: Any, delivery_id: str) -> None:
    cur.execute("UPDATE deliveries SET status = 'acknowledged', lease_until = NULL, updated_at = now() "
                "WHERE delivery_id = %s", (delivery_id,))


def mark_failed(cur: Any, delivery_id: str, attempts: int, error: str,
                next_at: dt.datetime | None) -> bool:
    """Record a failed attempt: rescheduled at ``next_at``, or dead when it is None. False
    when the agency confirmed the delivery meanwhile (a copy got through after all)."""
    cur.execute(Prepared(
        "UPDATE deliveries SET attempts = %s, last_error = %s, lease_until = NULL, "
        "status = CASE WHEN %s::timestamptz IS NULL THEN 'dead' ELSE 'pending' END, "
        "next_attempt_at = coalesce(%s::timestamptz, next_attempt_at), updated_at = now() "
        "WHERE delivery_id = %s AND status <> 'acknowledged'"),
        (attempts, error, next_at, next_at, delivery_id),
    )
    return cur.rowcount == 1


def revive(cur: Any, delivery_id: str) -> dict | None:
    """Put a dead delivery back in the schedule (attempts start over); None if not dead."""
    cur.execute(
        "UPDATE deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), "
        "lease_until = NULL, updated_at = now() FROM (SELECT delivery_id, attempts FROM deliveries "
        "WHERE delivery_id = %s AND status = 'dead' FOR UPDATE) old "
        "WHERE d.delivery_id = old.delivery_id "
        "RETURNING d.delivery_id, d.dossier_code, d.agency_code, old.attempts AS previous_attempts",
        (delivery_id,),
    )
    return cur.fetchone()


def get_delivery(cur: Any, delivery_id: str, for_update: bool = False) -> dict | None:
    lock = " FOR UPDATE" if for_update else ""
    cur.execute(Prepared(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = %s{lock}"), (delivery_id,))
    return cur.fetchone()
