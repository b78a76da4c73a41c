"""``python -m bench scale [--quick]``: submissions/s with two dossier and gateway processes vs one.

Starts the whole system twice in one run, each time on a throw-away database and a private
RabbitMQ vhost: first with one process of everything (the baseline), then with
``DOSSIER_PROCESSES=2`` and ``GATEWAY_PROCESSES=2`` (``--processes`` changes the 2). Each
system gets the same warm-up and then the same N submissions through the gateway, C in flight
(the filing and the citizen come from ``bench.submit``'s helpers). It reports both rates and
latencies and ``ratio`` = multi-process rate / single-process rate, checks that every
submission filed exactly one dossier and that every dossier process took part, and ends with
``FAILED scale`` (no ratio) on any failed request.

On a machine with two cores, shared with PostgreSQL, RabbitMQ and the other services, a second
dossier process has little idle CPU to use: expect a ratio near 1, not 2 (the target is "no
slower"). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.submit import _bench_server, _citizen_token, _filing, _run
from bench.support import (
    Failures,
    finish,
    free_port,
    ms,
    print_measures,
    private_vhost,
    request_json,
    throwaway_database,
)
from portal_common import config


@dataclass
class Measure:
    label: str
    processes: dict[str, int]
    seconds: float
    latencies: list[float]
    failed: int
    filed: int
    per_process: dict[str, float]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def _submit_counts(amqp_uri: str, wanted: int) -> dict[str, float]:
    """Submissions each dossier process handled so far, by instance (from its metrics port)."""
    from nameko.standalone.rpc import ClusterRpcProxy

    ports: dict[str, int] = {}
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as cluster:
        for _ in range(40 * wanted):
            answer = cluster.dossier.health()
            ports[answer["instance"]] = answer["metrics_port"]
            if len(ports) >= wanted:
                break
    counts = {}
    for instance, port in ports.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        counts[instance] = sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                               if line.startswith("portal_rpc_calls_total{") and 'method="submit"' in line
                               and 'outcome="ok"' in line)
    return counts


LOGS = ("dossier", "router", "identity")


def _append_transactions(dsn: str) -> dict[str, int]:
    """Transactions that appended to each service's log so far."""
    from portal_common.db import connect

    conn = connect(dsn, "public", application_name="bench-scale")
    try:
        with conn.cursor() as cur:
            result = {}
            for schema in LOGS:
                cur.execute(f"SELECT count(DISTINCT xmin::text) FROM {schema}.events")
                result[schema] = int(cur.fetchone()[0])
            return result
    finally:
        conn.close()


def _appends_per_filing(dsn: str, before: dict[str, int], filings: int) -> dict[str, float]:
    """Appending transactions per filing in each log, once the downstream work (routing,
    delivery, the applicant's SMS) has settled (at most 20 s)."""
    deadline = time.monotonic() + 20
    now = _append_transactions(dsn)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        later = _append_transactions(dsn)
        if later == now:
            break
        now = later
    return {log: round((now[log] - before[log]) / max(filings, 1), 2) for log in LOGS}


def measure(label: str, processes: dict[str, int], n: int, concurrency: int, failures: Failures) -> Measure:
    """One system with ``processes`` per service: warm up, then ``n`` submissions."""
    from deploy.launcher import LocalSystem, migrate_and_seed

    tag = uuid.uuid4().hex[:6]
    with private_vhost(config.amqp_uri(), f"bench_scale_{tag}") as amqp_uri, \
            throwaway_database(f"portal_bench_scale_{tag}", _bench_server()) as dsn:
        migrate_and_seed(dsn)
        env = {"LOCAL_ADAPTERS": "yes", "RATE_LOOKUP": "10000000", "RATE_DEFAULT": "10000000",
               "RATE_SIGNIN": "100000", "RATE_REGISTER": "100000", "RATE_OTP": "100000",
               "DB_POOL_SIZE": "4", "DOSSIER_DB_POOL_SIZE": "10", "METRICS_PORT": "0", "PROCESSES": "1"}
        env.update({f"{name.upper()}_PROCESSES": str(count) for name, count in processes.items()})
        system = LocalSystem(dsn, amqp_uri, free_port(), log_dir=Path(tempfile.mkdtemp(prefix="bench-scale-logs-")),
                             extra_env=env)
        system.start()
        try:
            system.wait_ready(timeout=150)
            url = system.gateway_url
            token = _citizen_token(url)
            auth = {"Authorization": f"Bearer {token}"}
            filing = _filing(url)
            answers: Counter[str] = Counter()

            def submit_one(_: int) -> bool:
                headers = dict(auth, **{"Idempotency-Key": f"bench-{uuid.uuid4().hex}"})
                try:
                    status, body = request_json(f"{url}/api/v1/dossiers", "POST", filing, headers)
                except OSError as exc:
                    answers[type(exc).__name__] += 1
                    return False
                answers[str(status) if status == 201 else f"{status} {(body or {}).get('code')}"] += 1
                return status == 201

            warm = max(20, n // 5)
            logged = _append_transactions(dsn)
            _, _, warm_failed = _run(warm, concurrency, submit_one)
            before = _submit_counts(amqp_uri, processes.get("dossier", 1))
            seconds, latencies, failed = _run(n, concurrency, submit_one)
            after = _submit_counts(amqp_uri, processes.get("dossier", 1))
            _, mine = request_json(f"{url}/api/v1/dossiers?page_size=1", headers=auth)
            filed = int(mine["total"]) - warm + warm_failed
            appends = _appends_per_filing(dsn, logged, warm + n - warm_failed - failed)
        finally:
            system.stop()
    print(f"{label}: log appends per filing (transactions, each holding its log's lock): {appends}")
    print(f"{label}: answers {dict(answers)}; dossiers filed in the measure: {filed}")
    failures.add(f"{label}: warm-up submission", warm_failed)
    failures.add(f"{label}: submission", failed)
    if filed != n:
        failures.add(f"{label}: {filed} dossiers filed for {n} submissions", abs(filed - n) or 1)
    per_process = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    if len(per_process) != processes.get("dossier", 1) or not all(v > 0 for v in per_process.values()):
        failures.add(f"{label}: not every dossier process took submissions {per_process}")
    return Measure(label, processes, seconds, latencies, failed, filed, per_process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--quick", action="store_true", help="150 submissions, 30 in flight")
    parser.add_argument("--dossiers", type=int, default=None, help="submissions per system (default 600)")
    parser.add_argument("--concurrency", type=int, default=None, help="in flight (default 60)")
    parser.add_argument("--processes", type=int, default=2, help="dossier and gateway processes of the second system")
    args = parser.parse_args(argv)
    n = args.dossiers or (150 if args.quick else 600)
    concurrency = args.concurrency or (30 if args.quick else 60)
    failures = Failures()
    single = measure("1 process each", {"dossier": 1, "gateway": 1}, n, concurrency, failures)
    multi = measure(f"dossier x{args.processes}, gateway x{args.processes}",
                    {"dossier": args.processes, "gateway": args.processes}, n, concurrency, failures)
    print(f"\n{n} submissions per system, {concurrency} in flight")
    print_measures([(m.label, m.rate, m.latencies, m.failed) for m in (single, multi)], 32)
    print("submissions per dossier process:", json.dumps({single.label: single.per_process,
                                                          multi.label: multi.per_process}))
    return finish("scale", f"dossiers={n} concurrency={concurrency} processes={args.processes} "
                  f"multi_per_s={multi.rate:.1f} multi_p50_ms={ms(multi.latencies, 50):.1f} "
                  f"multi_p99_ms={ms(multi.latencies, 99):.1f} "
                  f"single_per_s={single.rate:.1f} single_p50_ms={ms(single.latencies, 50):.1f} "
                  f"single_p99_ms={ms(single.latencies, 99):.1f} ratio={multi.rate / single.rate:.3f}", failures)
