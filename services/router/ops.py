"""The router's operator surface, registered with ``portal_common.registry``.

The metrics endpoint reads deliveries by status and dead letters from the router's own
table, ``portal-ops export`` adds a dossier's deliveries, and log lines of calls with a
``code``/``dossier_code`` argument carry that dossier code.

The commands call the running router over RPC, so every change is recorded as the router's own
events: ``dead-letters`` lists deliveries that exhausted their attempts, ``redeliver`` sends
one again (or ``--all``), ``deliveries`` shows what happened to one dossier, ``routes`` and
``route`` read and change the routing table, ``secret-status`` says where a route's signing
secret is read from (file, env or missing, and whether a previous one is still signing)
without showing it. Also runnable alone:
``python -m services.router.ops dead-letters``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from portal_common import config, registry
from portal_common.contracts.router import DELIVERY_STATUSES
from portal_common.db import Database
from portal_common.entrypoints import TransientClusterRpcProxy
from portal_common.errors import ServiceError
from portal_common.logs import code_arguments
from portal_common.ops import rpc_command_adder
from services.router.domain.subscriptions import failing

OPERATOR = {"actor": {"kind": "operator", "id": "portal-ops"}}


def _router(args: argparse.Namespace):
    uri = args.amqp_uri or config.amqp_uri("router")
    return TransientClusterRpcProxy({"AMQP_URI": uri}, timeout=args.timeout)


def _print(rows: Any, as_json: bool) -> None:
    if as_json or not isinstance(rows, list):
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return
    if not rows:
        print("(none)")
        return
    keys = [k for k in ("delivery_id", "dossier_code", "agency_code", "event_type", "channel", "status",
                        "attempts", "last_error", "endpoint", "secret_ref", "active") if k in rows[0]]
    if "delivery_id" not in keys:
        keys = ["agency_code", *[k for k in keys if k != "agency_code"]]
    print("  ".join(keys))
    for row in rows:
        print("  ".join(str(row.get(k, ""))[:60] for k in keys))


def _run(args: argparse.Namespace, call) -> int:
    try:
        with _router(args) as proxy:
            _print(call(proxy.router), args.json)
    except ServiceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def dead_letters_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.list_dead_letters(args.agency, args.limit))


def redeliver_command(args: argparse.Namespace) -> int:
    if args.all:
        return _run(args, lambda r: r.redeliver_all(args.agency, OPERATOR))
    if not args.delivery_id:
        print("error: name a delivery id or pass --all", file=sys.stderr)
        return 2
    return _run(args, lambda r: [r.redeliver(args.delivery_id, OPERATOR)])


def deliveries_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.deliveries_for(args.dossier_code))


def routes_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.list_routes())


def route_command(args: argparse.Namespace) -> int:
    route = {"agency_code": args.agency_code, "channel": args.channel, "endpoint": args.endpoint,
             "secret_ref": args.secret_ref, "active": not args.inactive}
    return _run(args, lambda r: r.configure_route(OPERATOR, route))


def secret_status_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.secret_status(args.agency_code))


def subscriptions_command(args: argparse.Namespace) -> int:
    def call(r):
        rows = r.subscription_status()
        return [row for row in rows if not args.agency or row["agency_code"] == args.agency]
    if args.json:
        return _run(args, call)
    try:
        with _router(args) as proxy:
            rows = call(proxy.router)
    except ServiceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    keys = ("id", "agency_code", "state", "position", "lag_entries", "lag_seconds", "attempts",
            "failing_for_seconds", "failing", "delivered", "dead_lettered", "last_error")
    print("  ".join(keys))
    for row in rows:
        print("  ".join(str(row.get(k, ""))[:60] for k in keys))
    if not rows:
        print("(none)")
    return 0


def subscription_pause_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.pause_subscription(OPERATOR, args.subscription_id))


def subscription_resume_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.resume_subscription(OPERATOR, args.subscription_id))


def subscription_redeliver_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.redeliver_subscription(OPERATOR, args.subscription_id, args.from_position))


def subscription_dead_letters_command(args: argparse.Namespace) -> int:
    return _run(args, lambda r: r.subscription_dead_letters(args.subscription_id, args.limit))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the router commands to an argparse sub-command set."""

    add = rpc_command_adder(subparsers, "router", 30.0)

    p = add("dead-letters", "list deliveries that exhausted their attempts", dead_letters_command)
    p.add_argument("--agency", default=None)
    p.add_argument("--limit", type=int, default=100)
    p = add("redeliver", "send a dead-lettered delivery again (or all of them)", redeliver_command)
    p.add_argument("delivery_id", nargs="?")
    p.add_argument("--all", action="store_true", help="every dead letter (of --agency when given)")
    p.add_argument("--agency", default=None)
    p = add("deliveries", "the deliveries of one dossier", deliveries_command)
    p.add_argument("dossier_code")
    add("routes", "the routing table", routes_command)
    p = add("route", "set an agency's delivery channel", route_command)
    p.add_argument("agency_code")
    p.add_argument("--channel", choices=["amqp", "http"], required=True)
    p.add_argument("--endpoint", default=None, help="callback URL (http)")
    p.add_argument("--secret-ref", default=None, help="AGENCY_SECRET_<NAME> variable holding the HMAC secret")
    p.add_argument("--inactive", action="store_true", help="hold deliveries to this agency")
    p = add("secret-status", "where an agency's signing secret is read from (never prints it)",
            secret_status_command)
    p.add_argument("agency_code")
    p = add("subscriptions", "agency subscriptions: state, position, lag, failure streak", subscriptions_command)
    p.add_argument("--agency", default=None)
    p = add("subscription-pause", "stop delivering to a subscription (the feed keeps its place)",
            subscription_pause_command)
    p.add_argument("subscription_id")
    p = add("subscription-resume", "deliver to a paused subscription again", subscription_resume_command)
    p.add_argument("subscription_id")
    p = add("subscription-redeliver", "deliver a subscription's events again from a feed position",
            subscription_redeliver_command)
    p.add_argument("subscription_id")
    p.add_argument("--from", dest="from_position", type=int, required=True, help="feed position (inclusive)")
    p = add("subscription-dead-letters", "the feed entries a subscription gave up on",
            subscription_dead_letters_command)
    p.add_argument("subscription_id")
    p.add_argument("--limit", type=int, default=100)


# -- what other tools read --------------------------------------------------------------

GAUGES = (
    registry.Gauge("portal_deliveries", "Deliveries to agency back offices by status", ("status",)),
    registry.Gauge("portal_dead_letters", "Deliveries that exhausted their attempts"),
    registry.Gauge("portal_subscriptions", "Agency subscriptions by state", ("state",)),
    registry.Gauge("portal_subscription_lag_entries", "Feed entries a subscription has yet to examine",
                   ("subscription", "agency")),
    registry.Gauge("portal_subscription_lag_seconds", "Age of the oldest feed entry a subscription has yet "
                   "to examine", ("subscription", "agency")),
    registry.Gauge("portal_subscription_dead_letters", "Feed entries a subscription gave up on",
                   ("subscription", "agency")),
    registry.Gauge("portal_subscription_failing", "1 while a subscription has kept failing for longer than "
                   "SUBSCRIPTION_ALERT_AFTER seconds (alert on it)", ("subscription", "agency")),
)


def readings(cur: Any, schema: str) -> list[registry.Reading]:
    """Deliveries by status and dead letters (none before the table exists)."""
    cur.execute("SELECT to_regclass(%s)", (f"{schema}.deliveries",))
    if not cur.fetchone()[0]:
        return []
    cur.execute(f"SELECT status, count(*) FROM {schema}.deliveries GROUP BY status")
    counts = dict(cur.fetchall())
    out = [registry.Reading("portal_deliveries", (status,), counts.get(status, 0)) for status in DELIVERY_STATUSES]
    out.append(registry.Reading("portal_dead_letters", (), counts.get("dead", 0)))
    return out + subscription_readings(cur, schema)


def subscription_readings(cur: Any, schema: str) -> list[registry.Reading]:
    """Per-subscription lag, dead letters and the failing alert (none before the table exists)."""
    cur.execute("SELECT to_regclass(%s)", (f"{schema}.subscriptions",))
    if not cur.fetchone()[0]:
        return []
    alert_after = config.env_float("SUBSCRIPTION_ALERT_AFTER", 900.0, "router")
    cur.execute(f"SELECT state, count(*) FROM {schema}.subscriptions GROUP BY state")
    counts = dict(cur.fetchall())
    out = [registry.Reading("portal_subscriptions", (state,), counts.get(state, 0))
           for state in ("active", "paused", "ended")]
    cur.execute(
        f"SELECT s.id::text, s.agency_code, s.dead_lettered, "
        f"(SELECT count(*) FROM {schema}.agency_feed f WHERE f.agency_code = s.agency_code "
        f"AND f.position > s.position), "
        f"COALESCE(EXTRACT(EPOCH FROM now() - (SELECT min(f.created_at) FROM {schema}.agency_feed f "
        f"WHERE f.agency_code = s.agency_code AND f.position > s.position)), 0), "
        f"COALESCE(EXTRACT(EPOCH FROM now() - s.failing_since), 0) "
        f"FROM {schema}.subscriptions s WHERE s.state <> 'ended'")
    for sub_id, agency, dead, lag, lag_s, failing_for in cur.fetchall():
        labels = (sub_id, agency)
        out += [registry.Reading("portal_subscription_lag_entries", labels, lag),
                registry.Reading("portal_subscription_lag_seconds", labels, float(lag_s)),
                registry.Reading("portal_subscription_dead_letters", labels, dead),
                registry.Reading("portal_subscription_failing", labels, 1 if failing(failing_for, alert_after) else 0)]
    return out


def deliveries_of(code: str, dsn: str, schema: str) -> list[dict[str, Any]]:
    """One dossier's deliveries to agencies, oldest first (for ``portal-ops export``)."""
    db = Database(dsn, schema, size=1, application_name="portal-ops-export")
    try:
        with db.transaction() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (f"{schema}.deliveries",))
            if not cur.fetchone()["present"]:
                return []
            cur.execute(f"SELECT delivery_id, agency_code, addressed_to, event_type, channel, status, attempts, "
                        f"last_error, created_at, sent_at, updated_at FROM {schema}.deliveries "
                        "WHERE dossier_code = %s ORDER BY created_at", (code,))
            return cur.fetchall()
    finally:
        db.close()


registration = registry.Registration(
    service="router", commands=register, gauges=GAUGES, readings=readings, log_fields=code_arguments,
    dossier_records=registry.DossierRecords("deliveries", deliveries_of), metrics_port=9104,
)


def main(argv: list[str] | None = None) -> int:
    return registry.run_commands(register, "python -m services.router.ops", argv)


if __name__ == "__main__":
    sys.exit(main())
