"""``python -m bench chain [--quick]``: the router's catalog lookups for a submission, per place.

Options: ``--places N`` per round (40, 10 with ``--quick``), ``--rounds N`` (2).

For each submitted dossier the router asks the catalog whether its procedure feeds another one
(liên thông) and, when it does, which agency of the next kind serves the applicant's place
(``catalog_client.chain_step``). Applicants come from thousands of places, so the lookup for a
place seen within the cache's time is the exception. This starts the whole system on a
throw-away database and a private vhost and, for a procedure with a next step and one without,
looks up places the run has not asked about yet, two ways in alternating rounds:

* baseline: a standalone client opened for the lookup and ``chain_step`` over it, which is what
  every new place cost when the answers were kept by procedure and place together;
* now: ``catalog_client.chain_finder``: the procedure's answer kept by its code, the agencies
  by province for all of its wards (``agencies_by_ward``), over clients kept open between calls.

Per lookup it reports the wall time, this process's CPU and the broker's (``beam.smp``, which
must run on this machine). Both ways must give the same answer for every place; a difference
or an exception is counted as a failure.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg2
from nameko.standalone.rpc import ClusterRpcProxy

from bench.support import Failures, finish, free_port, local_broker, private_vhost, process_cpu, throwaway_database
from portal_common import config
from services.router import catalog_client

PROVINCE = "1"
CHAINED, UNCHAINED = "1.001193", "1.000894"  # birth registration feeds residence; a procedure that feeds none



def _places(dsn: str, count: int) -> list[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT ward_code::text FROM catalog.agencies WHERE province_code::text = %s "
                    "AND ward_code IS NOT NULL ORDER BY 1 LIMIT %s", (PROVINCE, count))
        return [row[0] for row in cur.fetchall()]


def _baseline(amqp: str):
    def lookup(procedure: str, ward: str) -> dict | None:
        with ClusterRpcProxy({"AMQP_URI": amqp}, timeout=10) as proxy:
            return catalog_client.chain_step(proxy.catalog, procedure, PROVINCE, ward)
    return lookup


def _timed(lookup, procedure: str, wards: list[str], broker: psutil.Process, failures: Failures,
           answers: dict) -> tuple[float, float, float]:
    """Seconds of wall, client CPU and broker CPU for looking up every ward once."""
    broker_cpu, cpu, wall = process_cpu(broker), time.process_time(), time.perf_counter()
    for ward in wards:
        try:
            answer = lookup(procedure, ward)
        except Exception as exc:  # counted: a benchmark with a failure prints no ratio
            failures.add(type(exc).__name__)
            continue
        if answers.setdefault((procedure, ward), answer) != answer:
            failures.add("the two ways answered differently")
    return time.perf_counter() - wall, time.process_time() - cpu, process_cpu(broker) - broker_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chain")
    parser.add_argument("--quick", action="store_true", help="10 places per round")
    parser.add_argument("--places", type=int, default=None, help="new places per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    per_round = args.places or (10 if args.quick else 40)
    broker = local_broker("chain")

    from deploy.launcher import LocalSystem, migrate_and_seed

    run = uuid.uuid4().hex[:8]
    failures = Failures()
    totals: dict[tuple[str, str], list[float]] = {}
    with (private_vhost(config.amqp_uri(), f"portal_bench_chain_{run}") as amqp,
          throwaway_database(f"portal_bench_chain_{run}") as dsn):
        print(f"starting the system (database portal_bench_chain_{run})", file=sys.stderr)
        migrate_and_seed(dsn)
        system = LocalSystem(dsn, amqp, free_port(), log_dir=Path(f"/tmp/bench-chain-{run}"),
                             extra_env={"LOCAL_ADAPTERS": "yes", "DB_POOL_SIZE": "4"})
        try:
            system.start()
            system.wait_ready(timeout=120)
            places = _places(dsn, per_round * args.rounds + 1)
            if len(places) < per_round * args.rounds + 1:
                raise SystemExit(f"province {PROVINCE} has {len(places)} places; ask for fewer")
            finder = catalog_client.chain_finder(amqp)
            ways = {"baseline": _baseline(amqp), "now": lambda procedure, ward: finder(procedure, PROVINCE, ward)}
            with ClusterRpcProxy({"AMQP_URI": amqp}, timeout=10) as proxy:
                if not proxy.catalog.get_procedure(CHAINED).get("next_procedure") or \
                        proxy.catalog.get_procedure(UNCHAINED).get("next_procedure"):
                    raise SystemExit(f"the seeded catalog no longer chains {CHAINED} alone of the two")
            answers: dict = {}
            for procedure in (CHAINED, UNCHAINED):  # warm: the procedure known, a client open
                for lookup in ways.values():
                    _timed(lookup, procedure, places[-1:], broker, failures, answers)
            for n in range(args.rounds):
                wards = places[n * per_round:(n + 1) * per_round]  # places this run has not asked about
                for procedure in (CHAINED, UNCHAINED):
                    for way in (("baseline", "now") if n % 2 == 0 else ("now", "baseline")):
                        spent = _timed(ways[way], procedure, wards, broker, failures, answers)
                        acc = totals.setdefault((procedure, way), [0.0, 0.0, 0.0, 0])
                        for i in range(3):
                            acc[i] += spent[i]
                        acc[3] += len(wards)
        finally:
            catalog_client.close_all()
            system.stop()
    print(f"{args.rounds} rounds of {per_round} places not asked about before; per lookup, in ms")
    print(f"{'procedure':<30}{'way':<10}{'wall':>9}{'client CPU':>12}{'broker CPU':>12}")
    figures = []
    for procedure, label in ((CHAINED, "chained"), (UNCHAINED, "unchained")):
        per = {}
        for way in ("baseline", "now"):
            wall, cpu, broker, count = totals[(procedure, way)]
            per[way] = [x / max(count, 1) * 1e3 for x in (wall, cpu, broker)]
            print(f"{procedure + ' (' + label + ')':<30}{way:<10}{per[way][0]:>9.3f}{per[way][1]:>12.3f}"
                  f"{per[way][2]:>12.3f}")
        figures.append(f"{label}_ms={per['now'][0]:.3f} {label}_baseline_ms={per['baseline'][0]:.2f} "
                       f"{label}_ratio={per['now'][0] / per['baseline'][0]:.3f} "
                       f"{label}_broker_ms={per['now'][2]:.2f} {label}_baseline_broker_ms={per['baseline'][2]:.2f}")
    return finish("chain", f"places={per_round * args.rounds} " + " ".join(figures), failures)


if __name__ == "__main__":
    raise SystemExit(main())
