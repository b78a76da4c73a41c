"""``python -m bench handlers [--quick]``: a dossier event handled alone by identity and the router, in-process.

Options: ``--events N`` per slice (100, 40 with ``--quick``), ``--slices N`` per way (4, 2).

At a quiet hour most dossier events reach identity (the applicant's SMS) and the router (the
agency's delivery and feed) with nothing else in flight, so each is handled alone. This runs
both handlers in this process on a throw-away database (identity's and the router's schemas)
and a private RabbitMQ vhost, each with a pool of one connection, and reads per event the
process's CPU, the PostgreSQL backend's CPU and the round trips sent (every statement, or batch
of statements, and every ``COMMIT`` on its own), in alternating slices of ``--events``:

* identity: a ``DossierSubmitted`` through ``take`` (a batch of one: the owner learned, the
  event claimed and whom to notify read in one round trip, the notice and its ``COMMIT`` in
  another; the SMS; the notice closed and ``ApplicantNotified`` appended) against the
  baseline ``handle``, the one-at-a-time way a lone event went before;
* router: a ``DossierSubmitted`` alone (``take_dossier_event``) against the baseline of the
  same events in batches of ten (``on_dossier_events``), per event: what a lone event costs
  beyond its share of a batch.

Every event must end with its SMS in the local outbox and ``ApplicantNotified`` recorded, or
its delivery sent to the agency's queue; the run counts any other outcome, or any exception,
as a failure.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from bench.support import Failures, finish, private_vhost, throwaway_database
from portal_common.db import Database
from portal_common.eventstore import EventStore
from portal_common.migrations import migrate
from services.identity.adapters.local import LocalSmsGateway
from services.identity.application import applicant_notices
from services.router.application import Router
from services.router.channels import AmqpChannel
from services.router.settings import Settings
from tests.support.round_trips import count_round_trips

AGENCY = "BENCH.HANDLERS"


def _envelope(code: str, owner: dict[str, str], agency: str = AGENCY) -> dict[str, Any]:
    """A ``DossierSubmitted`` as the dossier service's outbox relay publishes it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return {"event_id": str(uuid.uuid4()), "event_type": "DossierSubmitted", "schema_version": 1,
            "stream_id": f"dossier-{code}", "stream_type": "dossier", "stream_version": 1, "position": 1,
            "occurred_at": now, "recorded_at": now, "correlation_id": None, "causation_id": None,
            "actor": {"kind": "citizen", "id": owner["account_id"], "agency_code": None},
            "data": {"code": code, "owner": {"account_id": owner["account_id"], "kind": "citizen", "subject": None},
                     "applicant": {"full_name": "Nguyễn Văn Thử"}, "form": {},
                     "procedure": {"code": "1.001193", "version": 1, "name": "Đăng ký khai sinh",
                                   "processing_days": 3},
                     "agency": {"code": agency, "name": None, "level": None}, "documents": [],
                     "submitted_at": now, "idempotency_key": None}}


def _citizens(db: Database, n: int) -> list[dict[str, str]]:
    """``n`` citizens with a phone who take SMS, written straight into identity's accounts."""
    owners = [{"account_id": str(uuid.uuid4()), "phone": f"09{random.randrange(10**8):08d}"} for _ in range(n)]
    with db.transaction() as cur:
        for owner in owners:
            cur.execute("INSERT INTO accounts (id, role, identifier, full_name, phone, notify_sms) "
                        "VALUES (%s, 'citizen', %s, 'Nguyễn Văn Thử', %s, true)",
                        (owner["account_id"], f"b{uuid.uuid4().hex[:18]}", owner["phone"]))
    return owners


def _code() -> str:
    return f"{AGENCY}-261206-{uuid.uuid4().int % 10**9:09d}"


class Meter:
    """CPU of this process and of one PostgreSQL backend, and the round trips sent."""

    def __init__(self, db: Database, trips: list[str]):
        with db.transaction() as cur:
            cur.execute("SELECT pg_backend_pid() AS pid")
            self.backend = psutil.Process(cur.fetchone()["pid"])
        self.trips = trips

    def measure(self, run: Callable[[], None]) -> tuple[float, float, int]:
        """Python CPU seconds, backend CPU seconds and round trips of ``run()``."""
        self.trips.clear()
        before = self.backend.cpu_times()
        cpu = time.process_time()
        run()
        cpu = time.process_time() - cpu
        after = self.backend.cpu_times()
        return cpu, (after.user + after.system) - (before.user + before.system), len(self.trips)


def _identity(db: Database, meter: Meter, events: int, slices: int, failures: Failures) -> dict[str, list]:
    store, sms = EventStore(db), LocalSmsGateway(db)
    totals: dict[str, list] = {"take": [0.0, 0.0, 0], "handle": [0.0, 0.0, 0]}
    ways = {"take": applicant_notices.take, "handle": applicant_notices.handle}
    for _ in range(slices):
        for name, way in ways.items():
            owners = _citizens(db, events)
            envelopes = [_envelope(_code(), owner) for owner in owners]

            def run(way=way, name=name, envelopes=envelopes) -> None:
                for envelope in envelopes:
                    try:
                        if way(db, store, sms, envelope) != "notice":
                            failures.add(f"identity {name}: not noticed")
                    except Exception as exc:  # counted: a run with a failure prints no ratio
                        failures.add(f"identity {name}: {type(exc).__name__}")
            for i, figure in enumerate(meter.measure(run)):
                totals[name][i] += figure
            with db.transaction() as cur:
                cur.execute("SELECT count(*) AS n FROM local_sms_outbox WHERE reference = ANY(%s)",
                            ([e["event_id"] for e in envelopes],))
                failures.add(f"identity {name}: SMS missing", events - cur.fetchone()["n"])
    return totals


def _router(db: Database, amqp_uri: str, meter: Meter, events: int, slices: int,
            failures: Failures) -> dict[str, list]:
    router = Router(db, EventStore(db), AmqpChannel(amqp_uri, timeout_s=5.0), http=None, settings=Settings())
    owner = {"account_id": str(uuid.uuid4())}
    totals: dict[str, list] = {"alone": [0.0, 0.0, 0], "ten": [0.0, 0.0, 0]}
    try:
        for _ in range(slices):
            for name in totals:
                envelopes = [_envelope(_code(), owner) for _ in range(events)]

                def run(name=name, envelopes=envelopes) -> None:
                    try:
                        if name == "alone":
                            for envelope in envelopes:
                                router.take_dossier_event(envelope)
                        else:
                            for start in range(0, len(envelopes), 10):
                                router.on_dossier_events(envelopes[start:start + 10])
                    except Exception as exc:  # counted: a run with a failure prints no ratio
                        failures.add(f"router {name}: {type(exc).__name__}")
                for i, figure in enumerate(meter.measure(run)):
                    totals[name][i] += figure
                with db.transaction() as cur:
                    cur.execute("SELECT count(*) AS n FROM deliveries WHERE status = 'sent' "
                                "AND event_id = ANY(%s::uuid[])", ([e["event_id"] for e in envelopes],))
                    failures.add(f"router {name}: not sent", events - cur.fetchone()["n"])
    finally:
        router.amqp.close()
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench handlers")
    parser.add_argument("--quick", action="store_true", help="2 slices of 40 events per way")
    parser.add_argument("--events", type=int, default=None, help="events per slice")
    parser.add_argument("--slices", type=int, default=None, help="slices per way")
    args = parser.parse_args(argv)
    events = args.events or (40 if args.quick else 100)
    slices = args.slices or (2 if args.quick else 4)
    failures = Failures()
    name = f"bench_handlers_{uuid.uuid4().hex[:8]}"
    base = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    with throwaway_database(name) as dsn, private_vhost(base, name) as amqp_uri, \
            pytest.MonkeyPatch.context() as patch:
        for schema in ("identity", "router"):
            migrate(dsn, schema, f"services.{schema}", create_database=False)
        trips = count_round_trips(patch)
        results = {}
        for schema, measure in (("identity", lambda db, meter: _identity(db, meter, events, slices, failures)),
                                ("router", lambda db, meter: _router(db, amqp_uri, meter, events, slices,
                                                                     failures))):
            db = Database(dsn, schema, size=1)  # one connection: one backend, its statements prepared once
            try:
                measure(db, Meter(db, trips))  # a first pass prepares every statement: not counted
                results[schema] = measure(db, Meter(db, trips))
            finally:
                db.close()
    n = events * slices
    rows = [("identity", "take (a batch of one)", "handle (one at a time)", *results["identity"].values()),
            ("router", "alone", "in batches of ten", *results["router"].values())]
    print(f"{events * slices} DossierSubmitted events per way, in {slices} alternating slices of {events}")
    print(f"{'per event':36s} {'Python CPU ms':>14s} {'PostgreSQL CPU ms':>18s} {'round trips':>12s}")
    figures = []
    for service, way, baseline, measured, base in rows:
        for label, (cpu, pg, trips_sent) in ((way, measured), (baseline, base)):
            print(f"{service + ': ' + label:36s} {1000 * cpu / n:14.3f} {1000 * pg / n:18.3f} {trips_sent / n:12.1f}")
        figure, baseline_figure = 1000 * (measured[0] + measured[1]) / n, 1000 * (base[0] + base[1]) / n
        figures.append(f"{service}_cpu_ms={figure:.3f} {service}_baseline_cpu_ms={baseline_figure:.3f} "
                       f"{service}_ratio={figure / baseline_figure:.3f} {service}_round_trips={measured[2] / n:.1f} "
                       f"{service}_baseline_round_trips={base[2] / n:.1f}")
    return finish("handlers", f"events={n} " + " ".join(figures), failures)


if __name__ == "__main__":
    raise SystemExit(main())
