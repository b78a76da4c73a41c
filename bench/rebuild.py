"""``python -m bench rebuild [--quick] [--events N]``: projection rebuild rate over a big log.

Fills a throw-away schema of the bench database with a dossier log (default 1,000,000
events: dossiers of ten lifecycle events each, generated server-side with INSERT ... SELECT;
the hash-chain columns are filled with placeholders, which a rebuild never reads), then
measures, in the same run:

- baseline: the raw scan a rebuild needs (the same ordered server-side cursor, rows fetched
  into Python, nothing folded or written);
- rebuild: ``queries.rebuild`` of every projection (replay + bulk insert, one
  transaction), and the rebuilt rows are checked against a replay of one sample dossier.

A count that does not match or a sample that rebuilt wrong ends the run with ``FAILED
rebuild errors=N`` instead of its ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import time
import uuid

from bench.support import Failures, finish
from portal_common import config
from portal_common.db import Database, connect, ensure_database
from portal_common.migrations import migrate
from services.dossier import queries
from services.dossier.application import on_postgres
from services.dossier.domain import lifecycle

EVENTS_PER_DOSSIER = 10

GENERATE = """
INSERT INTO events (position, stream_id, stream_type, version, event_id, event_type, schema_version,
                    payload, metadata, occurred_at, recorded_at, prev_hash, hash)
SELECT (d - 1) * 10 + v, 'dossier-' || code, 'dossier', v, gen_random_uuid(),
       (ARRAY['DossierSubmitted', 'DossierReceived', 'DossierProcessingStarted', 'SupplementRequested',
              'DossierSupplemented', 'DossierProcessingStarted', 'DossierPaused', 'DossierResumed',
              'DossierResultReady', 'DossierResultReturned'])[v],
       1,
       CASE v
         WHEN 1 THEN jsonb_build_object(
           'code', code, 'owner', jsonb_build_object('account_id', 'acc-' || mod(d, 5000), 'kind', 'citizen',
                                                     'subject', NULL),
           'applicant', jsonb_build_object('full_name', 'Bench Applicant', 'province', '01'),
           'form', '{}'::jsonb,
           'procedure', jsonb_build_object('code', '1.000001', 'version', 1, 'name', 'Bench procedure',
                                           'processing_days', 5),
           'agency', jsonb_build_object('code', agency, 'name', 'Bench agency ' || agency),
           'documents', '[]'::jsonb, 'submitted_at', at, 'idempotency_key', NULL)
         WHEN 2 THEN jsonb_build_object('code', code, 'agency_code', agency, 'received_at', at,
                                        'processing_days', 5, 'appointment_date', '2026-03-09')
         WHEN 4 THEN jsonb_build_object('code', code, 'agency_code', agency, 'missing', '["photo"]'::jsonb,
                                        'reason', 'photo missing', 'due_date', NULL)
         WHEN 5 THEN jsonb_build_object('code', code, 'documents', '[]'::jsonb, 'note', 'attached')
         WHEN 7 THEN jsonb_build_object('code', code, 'agency_code', agency, 'reason', 'waiting',
                                        'paused_on', '2026-03-03')
         WHEN 8 THEN jsonb_build_object('code', code, 'agency_code', agency, 'resumed_on', '2026-03-04',
                                        'paused_working_days', 1, 'appointment_date', '2026-03-10')
         ELSE jsonb_build_object('code', code, 'agency_code', agency, 'documents', '[]'::jsonb,
                                 'returned_at', at)
       END,
       jsonb_build_object('actor', jsonb_build_object('kind', 'officer', 'id', 'bench', 'agency_code', agency)),
       ts, ts, '\\x00'::bytea, '\\x00'::bytea
FROM (
  SELECT d, 'B' || mod(d, 50) AS agency, 'B' || mod(d, 50) || '-260302-' || lpad(d::text, 7, '0') AS code
  FROM generate_series(%(first)s, %(last)s) d
) dossiers
CROSS JOIN generate_series(1, 10) v
CROSS JOIN LATERAL (SELECT timestamptz '2026-03-02 02:00+00' + make_interval(secs => d * 0.01 + v * 60) AS ts) t
CROSS JOIN LATERAL (SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS at) a
"""


def _generate(db: Database, events: int) -> int:
    dossiers = max(1, events // EVENTS_PER_DOSSIER)
    chunk = 20_000
    with db.transaction(dict_rows=False) as cur:
        for first in range(1, dossiers + 1, chunk):
            cur.execute(GENERATE, {"first": first, "last": min(dossiers, first + chunk - 1)})
        cur.execute("SELECT setval('event_position_seq', (SELECT max(position) FROM events))")
    with db.transaction(dict_rows=False) as cur:
        cur.execute("ANALYZE events")
    return dossiers * EVENTS_PER_DOSSIER


def _baseline_scan(db: Database, batch_size: int) -> int:
    rows = 0
    with db.transaction(dict_rows=False) as cur:
        scan = cur.connection.cursor()
        scan.execute("DECLARE base_scan NO SCROLL CURSOR FOR SELECT stream_id, event_type, payload, occurred_at, "
                     "metadata -> 'actor' FROM events WHERE stream_type = 'dossier' ORDER BY stream_id, version")
        while True:
            scan.execute(f"FETCH {batch_size} FROM base_scan")
            batch = scan.fetchall()
            if not batch:
                break
            rows += len(batch)
        scan.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rebuild")
    parser.add_argument("--quick", action="store_true", help="100,000 events instead of 1,000,000")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--database-url", default=config.env("BENCH_DATABASE_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/portal_bench"))
    args = parser.parse_args(argv)
    target = args.events or (100_000 if args.quick else 1_000_000)
    ensure_database(args.database_url)
    schema = f"bench_rebuild_{uuid.uuid4().hex[:8]}"
    migrate(args.database_url, schema, "services.dossier", create_database=False)
    db = Database(args.database_url, schema, size=2, application_name="bench-rebuild")
    try:
        t0 = time.perf_counter()
        events = _generate(db, target)
        generated_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scanned = _baseline_scan(db, args.batch_size)
        scan_s = time.perf_counter() - t0
        stats = queries.rebuild(db, batch_size=args.batch_size)
        rebuild_s = stats["seconds"]
        sample = "dossier-B1-260302-0000001"
        code = sample.split("-", 1)[1]
        expected = lifecycle.replay(on_postgres(db).log.read_stream(sample))
        status = on_postgres(db).lookup(code)
        failures = Failures()
        if not stats["events"] == events == scanned:
            failures.add(f"events generated {events}, scanned {scanned}, rebuilt {stats['events']}")
        if not status or status["status"] != expected.status or expected.status != "returned":
            failures.add(f"sample {code} rebuilt as {status and status['status']}, replayed as {expected.status}")
    finally:
        db.close()
        conn = connect(args.database_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()
    scan_rate = scanned / scan_s
    rebuild_rate = stats["events"] / rebuild_s
    print(f"{'log':<34}{events:>14,} events, {stats['dossiers']:,} dossiers (generated in {generated_s:.1f} s)")
    print(f"{'measure':<34}{'seconds':>10}{'events/s':>16}")
    print(f"{'baseline: ordered raw scan':<34}{scan_s:>10.2f}{scan_rate:>16,.0f}")
    print(f"{f'rebuild: {len(queries.PROJECTIONS)} projections':<34}{rebuild_s:>10.2f}{rebuild_rate:>16,.0f}")
    return finish("rebuild", f"events={events} rebuild_events_per_s={rebuild_rate:.0f} "
                  f"baseline_scan_events_per_s={scan_rate:.0f} ratio={rebuild_rate / scan_rate:.3f}", failures)
