"""Operator commands of the dossier service, plugged into ``portal-ops`` (``register``).

``rebuild`` drops the named projections (all by default) and rebuilds them from the event
log in one transaction, printing progress; readers see the old rows until it commits.
Also runnable alone: ``python -m services.dossier.ops rebuild [--projection NAME ...]``.
"""

from __future__ import annotations

import argparse
import sys
import time

from portal_common import config
from portal_common.db import Database
from services.dossier import queries


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the dossier commands to an argparse sub-command set."""
    parser = subparsers.add_parser("rebuild", help="drop and rebuild dossier projections from the event log")
    parser.add_argument("--projection", "-p", action="append", choices=sorted(queries.PROJECTIONS),
                        help="a projection to rebuild (repeatable; default: all)")
    parser.add_argument("--database-url", default=None, help="default: DOSSIER_DATABASE_URL / DATABASE_URL")
    parser.add_argument("--schema", default="dossier")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.set_defaults(func=rebuild_command)


def rebuild_command(args: argparse.Namespace) -> int:
    dsn = args.database_url or config.database_url("dossier")
    db = Database(dsn, args.schema, size=1, application_name="portal-ops-rebuild")
    started = time.monotonic()

    def progress(events: int, dossiers: int) -> None:
        rate = events / max(time.monotonic() - started, 1e-9)
        print(f"\r  {dossiers:>10,} dossiers  {events:>12,} events  {rate:>12,.0f} events/s", end="",
              file=sys.stderr, flush=True)

    names = args.projection or sorted(queries.PROJECTIONS)
    print(f"rebuilding {', '.join(names)} from {args.schema}.events", file=sys.stderr)
    try:
        stats = queries.rebuild(db, names, batch_size=args.batch_size, progress=progress)
    finally:
        db.close()
    print(file=sys.stderr)
    print(f"rebuilt {', '.join(names)}: {stats['dossiers']} dossiers and {stats['drafts']} drafts "
          f"from {stats['events']} events in {stats['seconds']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.dossier.ops")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
