"""``python -m tests.chaos [--filings 300 --clients 10]``: the full chaos run.

Each fault is run on its own fresh system (database copied from the seeded template, vhost,
proxies) on one private PostgreSQL cluster and one private RabbitMQ node; after each, the
invariants are checked (tests/chaos/invariants.py). Prints each scenario's report and then
the table; exits 1 when any invariant is violated, 2 when a scenario could not run, 3 when
initdb or rabbitmq-server is missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos import scenarios
from tests.chaos.infra import Infrastructure, missing_binaries

DEFAULT_ORDER = ["none", "kill-dossier", "kill-router", "kill-identity", "kill-catalog", "kill-gateway",
                 "rabbitmq-restart", "postgresql-restart", "postgresql-kill9", "postgresql-cut", "rabbitmq-cut",
                 "postgresql-slow", "rabbitmq-slow"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filings", type=int, default=300, help="dossiers filed per scenario (default 300)")
    parser.add_argument("--clients", type=int, default=10, help="client threads, one citizen each (default 10)")
    parser.add_argument("--rate", type=float, default=None,
                        help="filings started per second at most (default: as fast as the clients go)")
    parser.add_argument("--at", type=float, default=0.4, help="share of filings started when the fault hits")
    parser.add_argument("--scenario", "-s", action="append", choices=sorted(scenarios.FAULTS),
                        help="run only this fault (repeatable); default: every fault, one run each")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds the system gets to settle at most")
    parser.add_argument("--logs", type=Path, default=None, help="keep the services' logs under this directory")
    args = parser.parse_args(argv)

    reason = missing_binaries()
    if reason:
        print(f"cannot run the chaos suite: {reason}", file=sys.stderr)
        return 3
    chosen = args.scenario or DEFAULT_ORDER
    logs = args.logs or Path(tempfile.mkdtemp(prefix="portal-chaos-logs-"))
    print(f"chaos: {len(chosen)} scenario(s), {args.filings} filings from {args.clients} clients each "
          f"({f'<= {args.rate:g}/s' if args.rate else 'full speed'}, fault at {args.at:.0%}); logs in {logs}",
          flush=True)
    started = time.monotonic()
    infra = Infrastructure().start()
    outcomes = []
    try:
        for key in chosen:
            fault = scenarios.FAULTS[key]
            print(f"\n-- {fault.name}: {fault.description}", flush=True)
            outcome = scenarios.run(infra, [] if key == "none" else [key], label=fault.name,
                                    filings=args.filings, clients=args.clients, at=args.at, rate=args.rate,
                                    log_dir=logs / key, settle_timeout=args.settle)
            outcomes.append(outcome)
            print(outcome.text(), flush=True)
    finally:
        infra.close()
    print(f"\nchaos: {len(outcomes)} scenario(s) in {time.monotonic() - started:.0f}s\n")
    print(scenarios.HEADER)
    print("|---|---|---|---|---|---|---|")
    for outcome in outcomes:
        print(scenarios.table_row(outcome))
    if any(o.report is None for o in outcomes):
        return 2
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
