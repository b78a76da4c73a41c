"""SQL of the agency feed and of subscriptions (the router's own tables), on the caller's
dict cursor and transaction.

``append`` draws feed positions under a transaction-scoped advisory lock, released only
once the commit is visible to every new snapshot: the transaction holding position *n* has
committed (or rolled back) before any other can draw *n + 1*. Positions therefore become
visible in order, and a reader that asks for ``position > last_seen`` cannot pass over an
entry that commits later (the technique of the event store, ``portal_common.eventstore``).
Appends should be the last write of their transaction: the lock is held until its commit.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any

from portal_common import jsoncodec
from portal_common.prepared import Prepared

FEED_LOCK = zlib.crc32(b"router.agency_feed")
_FEED_COLUMNS = ("position, agency_code, event_id, event_type, channels, dossier_code, stream_version, "
                 "procedure_code, field, province_code, status, national_status_code, cloudevent, created_at")
_SUB_COLUMNS = ("id, agency_code, callback_url, channels, filters, auth_header IS NOT NULL AS has_auth_header, "
                "state, position, attempts, next_attempt_at, last_error, failing_since, last_success_at, "
                "delivered, dead_lettered, created_at, ended_at")


# -- dossier attributes ------------------------------------------------------------------------


def dossier_attributes(cur: Any, code: str) -> dict | None:
    cur.execute(Prepared("SELECT code, agency_code, procedure_code, field, province_code, status, fed_version "
                         "FROM dossiers WHERE code = %s FOR UPDATE"), (code,))
    return cur.fetchone()


def saved_attributes(row: dict | None, attrs: dict) -> dict:
    """The dossier's row as ``save_dossier_attributes(cur, code, attrs, attrs["fed_version"])``
    leaves it (``row``: as it was; None: just inserted by ``set_dossier_holder``)."""
    before = dict(row) if row else {"code": attrs["code"], "agency_code": attrs.get("agency_code"),
                                    "procedure_code": None, "field": None, "province_code": None,
                                    "status": None, "fed_version": 0}
    after = dict(before)
    for key in ("procedure_code", "field", "province_code", "status"):
        if attrs.get(key) is not None:
            after[key] = attrs[key]
    after["fed_version"] = max(before["fed_version"] or 0, attrs["fed_version"])
    return after


def save_dossier_attributes(cur: Any, code: str, attrs: dict, fed_version: int) -> None:
    cur.execute(Prepared(
        "UPDATE dossiers SET procedure_code = COALESCE(%s, procedure_code), field = COALESCE(%s, field), "
        "province_code = COALESCE(%s, province_code), status = COALESCE(%s, status), "
        "fed_version = GREATEST(fed_version, %s), updated_at = now() WHERE code = %s"),
        (attrs.get("procedure_code"), attrs.get("field"), attrs.get("province_code"), attrs.get("status"),
         fed_version, code))


# -- holding events that came early ------------------------------------------------------------


def hold(cur: Any, event_id: str, code: str, version: int, envelope: dict) -> None:
    cur.execute("INSERT INTO feed_held (event_id, dossier_code, stream_version, envelope) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (event_id) DO NOTHING", (event_id, code, version, json.dumps(envelope)))


def take_held(cur: Any, code: str, version: int) -> dict | None:
    """The held event of ``code`` at ``version`` (removed), if any."""
    cur.execute(Prepared("DELETE FROM feed_held WHERE dossier_code = %s AND stream_version = %s RETURNING envelope"),
                (code, version))
    row = cur.fetchone()
    return row["envelope"] if row else None


def overdue_held(cur: Any, older_than_s: float, limit: int = 100) -> list[str]:
    """Dossiers with an event held longer than ``older_than_s`` (its predecessor never came)."""
    cur.execute("SELECT DISTINCT dossier_code FROM feed_held WHERE held_at < now() - make_interval(secs => %s) "
                "LIMIT %s", (older_than_s, limit))
    return [r["dossier_code"] for r in cur.fetchall()]


def take_all_held(cur: Any, code: str) -> list[dict]:
    cur.execute("DELETE FROM feed_held WHERE dossier_code = %s RETURNING envelope, stream_version", (code,))
    return [r["envelope"] for r in sorted(cur.fetchall(), key=lambda r: r["stream_version"])]


# -- the feed --------------------------------------------------------------------------------------


_INSERT_ENTRY = (
    "INSERT INTO agency_feed (position, agency_code, event_id, event_type, channels, dossier_code, "
    "stream_version, procedure_code, field, province_code, status, national_status_code, cloudevent) "
    "SELECT nextval('agency_feed_position_seq'), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s "
    "WHERE NOT EXISTS (SELECT 1 FROM agency_feed WHERE agency_code = %s AND event_id = %s)"
)
_ADD_ENTRY, _ADD_ENTRY_RETURNING = Prepared(_INSERT_ENTRY), Prepared(_INSERT_ENTRY + " RETURNING position")
_FEED_LOCK = Prepared("SELECT pg_advisory_xact_lock(%s)")


def _entry_values(e: dict) -> tuple:
    return (e["agency_code"], e["event_id"], e["event_type"], e["channels"], e["dossier_code"],
            e.get("stream_version"), e.get("procedure_code"), e.get("field"), e.get("province_code"),
            e.get("status"), e.get("national_status_code"), jsoncodec.dumps(e["cloudevent"]).decode(),
            e["agency_code"], e["event_id"])


def append(cur: Any, entries: list[dict]) -> list[int]:
    """Add entries to the feed (an agency's copy of an event already there is skipped); returns
    the positions drawn. Takes the feed lock: call it last in the transaction."""
    if not entries:
        return []
    cur.execute(_FEED_LOCK, (FEED_LOCK,))
    positions = []
    for e in entries:
        cur.execute(_ADD_ENTRY_RETURNING, _entry_values(e))
        row = cur.fetchone()
        if row:
            positions.append(row["position"])
    return positions


def append_unread(cur: Any, entries: list[dict]) -> None:
    """``append`` without reading the positions back, so that ``cur`` can be a
    ``StatementBatch`` sending the lock, the entries and the commit in one round trip."""
    if not entries:
        return
    cur.execute(_FEED_LOCK, (FEED_LOCK,))
    for e in entries:
        cur.execute(_ADD_ENTRY, _entry_values(e))


def read_feed(cur: Any, agency_code: str, after: int, limit: int) -> list[dict]:
    cur.execute(f"SELECT {_FEED_COLUMNS} FROM agency_feed WHERE agency_code = %s AND position > %s "
                "ORDER BY position LIMIT %s", (agency_code, after, limit))
    return cur.fetchall()


def head(cur: Any, agency_code: str | None = None) -> int:
    if agency_code is None:
        cur.execute("SELECT COALESCE(max(position), 0) AS head FROM agency_feed")
    else:
        cur.execute("SELECT COALESCE(max(position), 0) AS head FROM agency_feed WHERE agency_code = %s",
                    (agency_code,))
    return cur.fetchone()["head"]


# -- subscriptions ------------------------------------------------------------------------------------


def insert_subscription(cur: Any, sub: dict) -> dict:
    cur.execute(
        "INSERT INTO subscriptions (id, agency_code, callback_url, channels, filters, auth_header, position) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_SUB_COLUMNS}",
        (sub["id"], sub["agency_code"], sub["callback_url"], sub["channels"], json.dumps(sub["filters"]),
         sub.get("auth_header"), sub["position"]))
    return cur.fetchone()


def get_subscription(cur: Any, sub_id: str, agency_code: str | None = None, for_update: bool = False) -> dict | None:
    sql = f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE id = %s"
    args: list[Any] = [sub_id]
    if agency_code is not None:
        sql += " AND agency_code = %s"
        args.append(agency_code)
    cur.execute(sql + (" FOR UPDATE" if for_update else ""), args)
    return cur.fetchone()


def list_subscriptions(cur: Any, agency_code: str | None = None, include_ended: bool = False) -> list[dict]:
    sql = f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE true"
    args: list[Any] = []
    if agency_code is not None:
        sql += " AND agency_code = %s"
        args.append(agency_code)
    if not include_ended:
        sql += " AND state <> 'ended'"
    cur.execute(sql + " ORDER BY created_at, id", args)
    return cur.fetchall()


def set_state(cur: Any, sub_id: str, state: str) -> None:
    cur.execute("UPDATE subscriptions SET state = %s, ended_at = CASE WHEN %s = 'ended' THEN now() END, "
                "next_attempt_at = now(), attempts = 0 WHERE id = %s", (state, state, sub_id))


def rewind(cur: Any, sub_id: str, position: int) -> None:
    cur.execute("UPDATE subscriptions SET position = %s, next_attempt_at = now(), attempts = 0, "
                "lease_until = NULL WHERE id = %s", (position, sub_id))


def due_subscriptions(cur: Any, agency_code: str | None, limit: int, now: dt.datetime) -> list[dict]:
    """Active subscriptions whose next attempt is due by ``now`` (the application's clock), not
    leased, and with feed entries waiting."""
    sql = ("SELECT s.id, s.agency_code, s.position, s.channels, s.filters FROM subscriptions s "
           "WHERE s.state = 'active' AND s.next_attempt_at <= %s "
           "AND (s.lease_until IS NULL OR s.lease_until < now()) "
           "AND EXISTS (SELECT 1 FROM agency_feed f WHERE f.agency_code = s.agency_code AND f.position > s.position)")
    args: list[Any] = [now]
    if agency_code is not None:
        sql += " AND s.agency_code = %s"
        args.append(agency_code)
    cur.execute(Prepared(sql + " ORDER BY s.next_attempt_at LIMIT %s"), [*args, limit])
    return cur.fetchall()


def skip_to(cur: Any, moves: list[tuple[str, int, int]]) -> None:
    """Move subscriptions past entries none of which matched them: ``(id, read from, to)``.
    A subscription rewound, leased or paused since it was read is left alone."""
    if not moves:
        return
    cur.execute(
        "UPDATE subscriptions s SET position = u.target FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[]) "
        "AS u(id, seen, target) WHERE s.id = u.id AND s.position = u.seen AND s.state = 'active' "
        "AND (s.lease_until IS NULL OR s.lease_until < now())",
        ([m[0] for m in moves], [m[1] for m in moves], [m[2] for m in moves]))


def lease_subscription(cur: Any, sub_id: str, lease_s: float, now: dt.datetime) -> dict | None:
    """Take the subscription for one delivery run (None if another worker holds it or it is
    not due); returns the row with its secret auth header."""
    cur.execute(
        "UPDATE subscriptions SET lease_until = now() + make_interval(secs => %s) WHERE id = %s "
        "AND state = 'active' AND next_attempt_at <= %s AND (lease_until IS NULL OR lease_until < now()) "
        "RETURNING id, agency_code, callback_url, channels, filters, auth_header, position, attempts",
        (lease_s, sub_id, now))
    return cur.fetchone()


def advance(cur: Any, sub_id: str, position: int, delivered: int) -> None:
    cur.execute("UPDATE subscriptions SET position = GREATEST(position, %s), delivered = delivered + %s, "
                "attempts = 0, last_error = NULL, failing_since = NULL, last_success_at = CASE WHEN %s > 0 "
                "THEN now() ELSE last_success_at END, next_attempt_at = now(), lease_until = NULL WHERE id = %s",
                (position, delivered, delivered, sub_id))


def record_failure(cur: Any, sub_id: str, attempts: int, error: str, next_at: dt.datetime,
                   now: dt.datetime) -> None:
    cur.execute("UPDATE subscriptions SET attempts = %s, last_error = %s, next_attempt_at = %s, lease_until = NULL, "
                "failing_since = COALESCE(failing_since, %s) WHERE id = %s",
                (attempts, error[:500], next_at, now, sub_id))


def dead_letter(cur: Any, sub_id: str, entry: dict, attempts: int, error: str) -> None:
    """Give up on one entry: record it and move past it (redelivery from a position resends it)."""
    cur.execute("INSERT INTO subscription_dead_letters (subscription_id, position, event_id, attempts, error) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subscription_id, position) DO UPDATE SET "
                "attempts = EXCLUDED.attempts, error = EXCLUDED.error, created_at = now()",
                (sub_id, entry["position"], entry["event_id"], attempts, error[:500]))
    cur.execute("UPDATE subscriptions SET position = GREATEST(position, %s), attempts = 0, dead_lettered = "
                "dead_lettered + 1, last_error = %s, next_attempt_at = now(), lease_until = NULL WHERE id = %s",
                (entry["position"], error[:500], sub_id))


def dead_letters(cur: Any, sub_id: str, limit: int = 100) -> list[dict]:
    cur.execute("SELECT subscription_id, position, event_id, attempts, error, created_at "
                "FROM subscription_dead_letters WHERE subscription_id = %s ORDER BY position LIMIT %s",
                (sub_id, limit))
    return cur.fetchall()


def stats(cur: Any, now: dt.datetime) -> list[dict]:
    """Every subscription that is not ended, with its lag behind its agency's feed head."""
    cur.execute(
        "SELECT s.id, s.agency_code, s.state, s.position, s.attempts, s.failing_since, s.delivered, "
        "s.dead_lettered, s.last_error, s.last_success_at, "
        "(SELECT count(*) FROM agency_feed f WHERE f.agency_code = s.agency_code AND f.position > s.position) "
        "AS lag_entries, EXTRACT(EPOCH FROM now() - (SELECT min(f.created_at) FROM agency_feed f "
        "WHERE f.agency_code = s.agency_code AND f.position > s.position)) AS lag_seconds, "
        "EXTRACT(EPOCH FROM %s - s.failing_since) AS failing_for_seconds "
        "FROM subscriptions s WHERE s.state <> 'ended' ORDER BY s.agency_code, s.created_at", (now,))
    return cur.fetchall()
