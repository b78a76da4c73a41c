"""The dossier service's operator surface, registered with ``portal_common.registry``.

``portal-ops export CODE`` writes one dossier's full history (view, events with hashes, chain
check, documents, and what other services record about it through their registrations).
``rebuild`` drops the named projections (all by default) and rebuilds them from the event
log in one transaction, printing progress; readers see the old rows until it commits.
The metrics endpoint reads dossiers by status and overdue from the status projection, and
log lines of calls with a ``code`` argument carry that dossier code.
Also runnable alone: ``python -m services.dossier.ops rebuild [--projection NAME ...]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from portal_common import config, registry
from portal_common.db import Database
from portal_common.errors import NotFound, ServiceError
from portal_common.logs import code_arguments
from portal_common.ops import jsonable
from services.dossier import queries


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the dossier commands to an argparse sub-command set."""
    parser = subparsers.add_parser(
        "export", help="one dossier's full history (events, hashes, documents, deliveries) as JSON")
    parser.add_argument("--database-url", default=None, help="default: <SERVICE>_DATABASE_URL / DATABASE_URL")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("code")
    parser.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    parser.add_argument("--schema", default="dossier")
    for other in _record_keepers():
        parser.add_argument(f"--{other.service}-schema", default=other.service)
    parser.set_defaults(func=export_command)

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


# -- export ----------------------------------------------------------------------------


def _record_keepers() -> list[registry.Registration]:
    """The other services that keep records about a dossier (the router's deliveries ...)."""
    return [r for r in registry.registrations() if r.dossier_records is not None]


def export_dossier(dsn: str, code: str, schema: str = "dossier",
                   elsewhere: Iterable[tuple[registry.DossierRecords, str, str]] = ()) -> dict[str, Any]:
    """Everything recorded about one dossier: its view, every event with its hash, the chain
    check of its stream, its documents (metadata and SHA-256) and, for each ``(records, dsn,
    schema)`` of ``elsewhere``, what another service records about it (deliveries ...)."""
    from portal_common.eventstore import ChainBreak, EventStore
    from services.dossier.application import on_postgres
    from services.dossier.application.views import full_view
    from services.dossier.domain.codes import looks_like_code, stream_id

    if not looks_like_code(code):
        raise NotFound("dossier_not_found", f"{code!r} is not a dossier code")
    db = Database(dsn, schema, size=2, application_name="portal-ops-export")
    try:
        store = EventStore(db)
        events = store.read_stream(stream_id(code))
        if not events:
            raise NotFound("dossier_not_found", f"no dossier {code} in {schema}")
        view = full_view(on_postgres(db, store).load(code))
        breaks = [b for b in store.verify(stream_id(code)) if isinstance(b, ChainBreak)]
        with db.transaction() as cur:
            cur.execute(f"SELECT position, hash FROM {schema}.events WHERE stream_id = %s ORDER BY version",
                        (stream_id(code),))
            hashes = {r["position"]: bytes(r["hash"]).hex() for r in cur.fetchall()}
            cur.execute(f"SELECT id, kind, requirement, name, content_type, size, sha256, created_at "
                        f"FROM {schema}.documents WHERE dossier_code = %s ORDER BY created_at", (code,))
            documents = cur.fetchall()
    finally:
        db.close()
    others = {records.section: records.read(code, other_dsn, other_schema)
              for records, other_dsn, other_schema in elsewhere}
    history = [{**e.envelope(), "metadata": e.metadata, "hash": hashes.get(e.position)} for e in events]
    return json.loads(json.dumps({
        "code": code,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "view": view,
        "events": history,
        "chain": {"intact": not breaks, "breaks": [b.__dict__ for b in breaks]},
        "documents": documents,
        **others,
    }, default=jsonable, ensure_ascii=False))


def export_command(args: argparse.Namespace) -> int:
    elsewhere = [(r.dossier_records, args.database_url or config.database_url(r.service),
                  getattr(args, f"{r.service}_schema")) for r in _record_keepers()]
    try:
        data = export_dossier(args.database_url or config.database_url("dossier"), args.code, args.schema,
                              elsewhere)
    except ServiceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"wrote {len(data['events'])} events of {args.code} to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0 if data["chain"]["intact"] else 1


# -- metrics -----------------------------------------------------------------------------

GAUGES = (
    registry.Gauge("portal_dossiers", "Dossiers by current status", ("status",), per_service=False),
    registry.Gauge("portal_dossiers_overdue", "Dossiers past their appointment date", per_service=False),
)


def readings(cur: Any, schema: str) -> list[registry.Reading]:
    """Dossiers by status and overdue, from the status projection (none before it exists)."""
    cur.execute("SELECT to_regclass(%s)", (f"{schema}.dossier_status",))
    if not cur.fetchone()[0]:
        return []
    cur.execute(f"SELECT status, count(*) FROM {schema}.dossier_status GROUP BY status")
    out = [registry.Reading("portal_dossiers", (status,), n) for status, n in sorted(cur.fetchall())]
    cur.execute(f"SELECT count(*) FROM {schema}.dossier_status WHERE overdue")
    out.append(registry.Reading("portal_dossiers_overdue", (), cur.fetchone()[0]))
    return out


registration = registry.Registration(
    service="dossier", commands=register, gauges=GAUGES, readings=readings, log_fields=code_arguments,
    metrics_port=9103,
)


def main(argv: list[str] | None = None) -> int:
    return registry.run_commands(register, "python -m services.dossier.ops", argv)


if __name__ == "__main__":
    sys.exit(main())
