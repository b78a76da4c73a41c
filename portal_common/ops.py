"""``portal-ops``: the operators' one command line.

    portal-ops verify [--schema S ...] [--stream ID]     check the event logs' hash chains
    portal-ops outbox [--schema S ...]                    unpublished events per log, and their age
    portal-ops replay --schema S --queue Q --from-position N [--event-type T ...]
                                                          send logged events to a subscriber's queue again
    portal-ops export CODE [--output FILE]                one dossier's full history as JSON
    portal-ops rebuild [--projection P ...]               (dossier) rebuild projections from the log
    portal-ops parked [--service S ...] [--limit N]       event messages parked after their last try
    portal-ops unpark [--service S ...]                   put parked messages back on their queues
    portal-ops dead-letters | redeliver | deliveries | routes | route   (router, over RPC)

The commands of one service (export, rebuild, the router's ...) are that service's own, found
through its registration (``portal_common.registry``) so there is one entry point and the
library names no service. Long work (verify, replay) shows a progress bar on stderr; results
go to stdout, as a table or ``--json``.
Exit status: 0 fine, 1 the check failed or a refusal, 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TextIO

from portal_common import config, registry
from portal_common.db import Database

_NAMEKO_QUEUE = re.compile(r"^evt-(?P<source>[\w.-]+?)-(?P<event_type>[A-Za-z0-9]+)--")


class Progress:
    """A one-line progress bar on a stream (stderr): done/total, rate and a bar when total is known."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None, width: int = 30,
                 every_s: float = 0.2):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.width = width
        self.every_s = every_s
        self.done = 0
        self._started = time.monotonic()
        self._shown = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._shown >= self.every_s:
            self._shown = now
            self._draw()

    def _draw(self, end: str = "") -> None:
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            text = f"\r{self.label} [{bar}] {frac:6.1%} {self.done:,}/{self.total:,} {rate:,.0f}/s"
        else:
            text = f"\r{self.label} {self.done:,} {rate:,.0f}/s"
        print(text, end=end, file=self.stream, flush=True)

    def close(self) -> None:
        self._draw(end="\n")


def _dsn(args: argparse.Namespace, service: str | None = None) -> str:
    return args.database_url or config.database_url(service)


def _has_log(db: Database) -> bool:
    with db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{db.schema}.events",))
        return bool(cur.fetchone()[0])


def log_schemas() -> tuple[str, ...]:
    """The event logs the commands read by default: every registered service's."""
    return registry.services()


def _print_table(rows: list[dict[str, Any]], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) if rows else len(k) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row.get(k, "")).ljust(widths[k]) for k in keys))


# -- verify ----------------------------------------------------------------------------


def verify_command(args: argparse.Namespace) -> int:
    from portal_common.eventstore import ChainBreak, EventStore

    report = []
    for schema in args.schema or log_schemas():
        db = Database(_dsn(args, schema), schema, size=1, application_name="portal-ops-verify")
        try:
            if not _has_log(db):
                report.append({"schema": schema, "checked": 0, "breaks": [], "note": "no event log"})
                continue
            store = EventStore(db)
            progress = Progress(f"verify {schema}", total=None if args.stream else store.head_position())
            breaks: list[dict[str, Any]] = []
            checked = 0
            for item in store.verify(args.stream, batch_size=args.batch_size):
                if isinstance(item, ChainBreak):
                    breaks.append({"stream_id": item.stream_id, "version": item.version,
                                   "position": item.position, "reason": item.reason})
                else:
                    checked += 1
                    # the whole log: the bar follows positions (which may have gaps) up to the head
                    progress.advance(1 if args.stream else max(item - progress.done, 0))
            progress.close()
            report.append({"schema": schema, "checked": checked, "breaks": breaks})
        finally:
            db.close()
    broken = sum(len(r["breaks"]) for r in report)
    if args.json:
        print(json.dumps({"intact": broken == 0, "logs": report}, indent=2))
    else:
        for r in report:
            state = r.get("note") or ("intact" if not r["breaks"] else f"{len(r['breaks'])} BROKEN")
            print(f"{r['schema']:<10} {r['checked']:>12,} events checked  {state}")
            for b in r["breaks"]:
                print(f"    position {b['position']} stream {b['stream_id']} v{b['version']}: {b['reason']}")
    return 1 if broken else 0


# -- outbox ----------------------------------------------------------------------------


def outbox_state(dsn: str, schema: str) -> dict[str, Any] | None:
    """Checkpoint, head, backlog and oldest unpublished age of one log (None without a log)."""
    from portal_common.outbox import read_state

    db = Database(dsn, schema, size=1, application_name="portal-ops-outbox")
    try:
        if not _has_log(db):
            return None
        with db.transaction(dict_rows=False) as cur:
            state = read_state(cur, schema)
    finally:
        db.close()
    return {"schema": schema, "checkpoint": state.checkpoint, "head": state.head, "backlog": state.backlog,
            "oldest_unpublished_s": None if state.oldest_unpublished_age_s is None
            else round(state.oldest_unpublished_age_s, 1)}


def outbox_command(args: argparse.Namespace) -> int:
    rows = [r for s in (args.schema or log_schemas()) if (r := outbox_state(_dsn(args, s), s)) is not None]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ["schema", "checkpoint", "head", "backlog", "oldest_unpublished_s"])
    return 0


# -- replay ----------------------------------------------------------------------------


def replay_command(args: argparse.Namespace) -> int:
    """Publish logged events (from a position) straight into one subscriber's queue.

    Consumers deduplicate on ``event_id``, so a replay re-applies only what a consumer lost.
    A nameko handler queue (``evt-<source>-<EventType>--...``) gets only its own event type
    unless told otherwise, so a handler is never fed events it was not written for.
    """
    from kombu import Connection, Exchange, Producer

    from portal_common.eventstore import EventStore
    from portal_common.outbox import publish_event

    types = set(args.event_type or [])
    match = _NAMEKO_QUEUE.match(args.queue)
    if not types and match:
        types = {match["event_type"]}
    if not types and not args.all_types:
        print("error: name --event-type (repeatable) or pass --all-types for a queue that takes every event",
              file=sys.stderr)
        return 2
    db = Database(_dsn(args, args.schema), args.schema, size=1, application_name="portal-ops-replay")
    sent = 0
    try:
        if not _has_log(db):
            print(f"error: {args.schema} has no event log", file=sys.stderr)
            return 1
        store = EventStore(db)
        head = store.head_position() if args.to_position is None else args.to_position
        uri = args.amqp_uri or config.amqp_uri(args.schema)
        with Connection(uri, transport_options={"confirm_publish": True}, connect_timeout=5) as conn:
            channel = conn.channel()
            try:
                channel.queue_declare(queue=args.queue, passive=True)
            except Exception:
                print(f"error: no queue named {args.queue!r} on {uri.rsplit('@', 1)[-1]}", file=sys.stderr)
                return 1
            producer = Producer(conn.channel(), exchange=Exchange(""))
            progress = Progress(f"replay {args.schema} -> {args.queue}",
                                total=max(head - args.from_position + 1, 0))
            last = args.from_position - 1
            for event in store.iter_all(args.from_position - 1, batch_size=args.batch_size):
                if event.position > head:
                    break
                progress.advance(event.position - last)
                last = event.position
                if types and event.event_type not in types:
                    continue
                if not args.dry_run:
                    publish_event(producer, event, routing_key=args.queue, replayed=True)
                sent += 1
            progress.close()
    finally:
        db.close()
    verb = "would send" if args.dry_run else "sent"
    print(f"{verb} {sent} events from {args.schema} (positions {args.from_position}..{head}) to {args.queue}")
    return 0


def jsonable(value: Any) -> Any:
    """A JSON-safe form of what a database row holds (for ``json.dumps(default=...)``)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


# -- parked event messages ---------------------------------------------------------------


def parking_services() -> tuple[str, ...]:
    """Whose parked messages the commands look at by default: every service's and the gateway's."""
    return (*registry.services(), "gateway")


def _parking_queues(args: argparse.Namespace) -> list[str]:
    from portal_common.redelivery import parking_queue_name

    return [parking_queue_name(s) for s in (args.service or parking_services())]


def parked_command(args: argparse.Namespace) -> int:
    """List parked messages (they stay parked); exit 1 when there are any, for scripts."""
    from portal_common.redelivery import list_parked, parked_counts

    amqp_uri = args.amqp_uri or config.amqp_uri()
    names = _parking_queues(args)
    counts = {name: 0 for name in names} | parked_counts(amqp_uri, names)  # no queue yet: nothing parked
    rows = [m.__dict__ for name, n in counts.items() if n for m in list_parked(amqp_uri, name, args.limit)]
    if args.json:
        print(json.dumps({"counts": counts, "messages": rows}, ensure_ascii=False, indent=2))
    else:
        for name, n in sorted(counts.items()):
            print(f"{name}: {n} parked")
        for row in rows:
            print(f"  {row['parked_at'][:19]}  {row['origin']}  tries={row['attempts']}  {row['error'][:100]}")
    return 1 if any(counts.values()) else 0


def unpark_command(args: argparse.Namespace) -> int:
    from portal_common.redelivery import unpark

    amqp_uri = args.amqp_uri or config.amqp_uri()
    total = 0
    for name in _parking_queues(args):
        moved = unpark(amqp_uri, name, args.limit)
        total += moved
        if moved:
            print(f"{name}: {moved} put back on their queues")
    print(f"{total} message(s) put back")
    return 0


# -- the command line ------------------------------------------------------------------


Command = Callable[[argparse.Namespace], int]


def rpc_command_adder(subparsers: argparse._SubParsersAction, service: str,
                      timeout: float) -> Callable[[str, str, Command], argparse.ArgumentParser]:
    """The ``add(name, help_text, func)`` a service's ``register`` declares its RPC commands with:
    each takes ``--amqp-uri`` (default ``<SERVICE>_AMQP_URI`` / ``AMQP_URI``), ``--timeout``
    (``timeout`` seconds unless given) and ``--json``, and runs ``func(args)``."""

    def add(name: str, help_text: str, func: Command) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--amqp-uri", default=None, help=f"default: {service.upper()}_AMQP_URI / AMQP_URI")
        parser.add_argument("--timeout", type=float, default=timeout)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=func)
        return parser

    return add


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal-ops", description="Operator commands of the portal back end.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name: str, help_text: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--database-url", default=None, help="default: <SERVICE>_DATABASE_URL / DATABASE_URL")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
        return p

    p = add("verify", "check the hash chains of the event logs", verify_command)
    p.add_argument("--schema", "-s", action="append", help=f"a log to check (repeatable; default: {log_schemas()})")
    p.add_argument("--stream", default=None, help="only this stream (e.g. dossier-<code>)")
    p.add_argument("--batch-size", type=int, default=5000)

    p = add("outbox", "show each log's unpublished backlog and its age", outbox_command)
    p.add_argument("--schema", "-s", action="append", help="a log (repeatable; default: every service)")

    p = add("replay", "send logged events from a position to a subscriber's queue", replay_command)
    p.add_argument("--schema", "-s", required=True, help="the producing service's log (dossier, catalog ...)")
    p.add_argument("--queue", "-q", required=True, help="the subscriber's queue")
    p.add_argument("--from-position", type=int, required=True, help="first position to send (inclusive)")
    p.add_argument("--to-position", type=int, default=None, help="last position (default: the head now)")
    p.add_argument("--event-type", "-t", action="append", help="only these types (repeatable)")
    p.add_argument("--all-types", action="store_true", help="every type (for a queue bound to several)")
    p.add_argument("--amqp-uri", default=None, help="default: <SCHEMA>_AMQP_URI / AMQP_URI")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--dry-run", action="store_true", help="count what would be sent")

    for name, help_text, func in (("parked", "event messages parked after their last try", parked_command),
                                  ("unpark", "put parked event messages back on their queues", unpark_command)):
        p = add(name, help_text, func)
        p.add_argument("--service", action="append", help=f"repeatable; default: {', '.join(parking_services())}")
        p.add_argument("--limit", type=int, default=1000)
        p.add_argument("--amqp-uri", default=None, help="default: AMQP_URI")

    for registration in registry.registrations():
        if registration.commands is not None:
            registration.commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    args = build_parser().parse_args(argv)
    with contextlib.suppress(BrokenPipeError):
        return args.func(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
