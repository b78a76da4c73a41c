"""``python -m bench scale [--quick]``: submissions/s with two dossier and gateway processes vs one.

Starts the whole system twice, side by side, each on a throw-away database and a private
RabbitMQ vhost: one with one process of everything (the baseline), one with
``DOSSIER_PROCESSES=2`` and ``GATEWAY_PROCESSES=2`` (``--processes`` changes the 2). Both get
the same warm-up, then R rounds each of the same N submissions through the gateway, C in
flight, alternating between the systems (single then multi, then multi then single, ...): the
machine's drift and load from elsewhere fall on both alike, where one run after the other
gave the second whatever the machine did meanwhile. (The filing and the citizen come from
``bench.submit``'s helpers.) It reports both rates over all rounds and their latencies, each
round's ratio, and ``ratio`` = multi-process rate / single-process rate; it checks that every
submission filed exactly one dossier and that every dossier process took part, and ends with
``FAILED scale`` (no ratio) on any failed request.

On a machine with two cores, shared with PostgreSQL, RabbitMQ and the other services, a second
dossier process has little idle CPU to use: expect a ratio near 1, not 2 (the target is "no
slower"). Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

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


def _owned(url: str, auth: dict) -> int:
    """How many dossiers the benchmark's citizen has filed so far."""
    _, mine = request_json(f"{url}/api/v1/dossiers?page_size=1", headers=auth)
    return int(mine["total"])


class System:
    """One whole system with ``processes`` per service, up for the whole run, so that its rounds
    of submissions can alternate with the other system's: load from elsewhere on the machine,
    and the machine's own drift, then fall on both alike."""

    def __init__(self, label: str, processes: dict[str, int], concurrency: int, failures: Failures):
        self.label, self.processes, self.concurrency, self.failures = label, processes, concurrency, failures
        self.seconds: list[float] = []
        self.latencies: list[float] = []
        self.failed = 0
        self.submitted = 0
        self.answers: Counter[str] = Counter()
        self._stack = contextlib.ExitStack()

    @property
    def rate(self) -> float:
        """Submissions per second over all of this system's rounds."""
        return len(self.latencies) / sum(self.seconds)

    def start(self, warm: int) -> None:
        from deploy.launcher import LocalSystem, migrate_and_seed

        tag = uuid.uuid4().hex[:6]
        self.amqp_uri = self._stack.enter_context(private_vhost(config.amqp_uri(), f"bench_scale_{tag}"))
        self.dsn = self._stack.enter_context(throwaway_database(f"portal_bench_scale_{tag}", _bench_server()))
        migrate_and_seed(self.dsn)
        env = {"LOCAL_ADAPTERS": "yes", "RATE_LOOKUP": "10000000", "RATE_DEFAULT": "10000000",
               "RATE_SIGNIN": "100000", "RATE_REGISTER": "100000", "RATE_OTP": "100000",
               "DB_POOL_SIZE": "4", "DOSSIER_DB_POOL_SIZE": "6", "METRICS_PORT": "0", "PROCESSES": "1"}
        env.update({f"{name.upper()}_PROCESSES": str(count) for name, count in self.processes.items()})
        system = LocalSystem(self.dsn, self.amqp_uri, free_port(),
                             log_dir=Path(tempfile.mkdtemp(prefix="bench-scale-logs-")), extra_env=env)
        self._stack.callback(system.stop)
        system.start()
        system.wait_ready(timeout=150)
        self.url = system.gateway_url
        self.auth = {"Authorization": f"Bearer {_citizen_token(self.url)}"}
        self.filing = _filing(self.url)
        self.logged = _append_transactions(self.dsn)
        _, _, warm_failed = _run(warm, self.concurrency, self._submit_one)
        self.failures.add(f"{self.label}: warm-up submission", warm_failed)
        self.owned_before = _owned(self.url, self.auth)
        self.handled_before = _submit_counts(self.amqp_uri, self.dossier_processes)

    @property
    def dossier_processes(self) -> int:
        return self.processes.get("dossier", 1)

    def _submit_one(self, _: int) -> bool:
        headers = dict(self.auth, **{"Idempotency-Key": f"bench-{uuid.uuid4().hex}"})
        try:
            status, body = request_json(f"{self.url}/api/v1/dossiers", "POST", self.filing, headers)
        except OSError as exc:
            self.answers[type(exc).__name__] += 1
            return False
        self.answers[str(status) if status == 201 else f"{status} {(body or {}).get('code')}"] += 1
        return status == 201

    def round(self, n: int) -> float:
        """``n`` submissions, ``concurrency`` in flight; returns this round's rate."""
        seconds, latencies, failed = _run(n, self.concurrency, self._submit_one)
        self.seconds.append(seconds)
        self.latencies += latencies
        self.failed += failed
        self.submitted += n
        self.failures.add(f"{self.label}: submission", failed)
        return len(latencies) / seconds

    def check(self) -> dict[str, float]:
        """Every measured submission filed one dossier, and every dossier process took some:
        the submissions each process handled in the rounds."""
        filed = _owned(self.url, self.auth) - self.owned_before
        if filed != self.submitted - self.failed:
            self.failures.add(f"{self.label}: {filed} dossiers filed for {self.submitted - self.failed} "
                              "answered submissions", abs(filed - self.submitted + self.failed) or 1)
        after = _submit_counts(self.amqp_uri, self.dossier_processes)
        per_process = {k: after.get(k, 0.0) - self.handled_before.get(k, 0.0) for k in after}
        if len(per_process) != self.dossier_processes or not all(v > 0 for v in per_process.values()):
            self.failures.add(f"{self.label}: not every dossier process took submissions {per_process}")
        appends = _appends_per_filing(self.dsn, self.logged, _owned(self.url, self.auth))
        print(f"{self.label}: log appends per filing (transactions, each holding its log's lock): {appends}")
        print(f"{self.label}: answers {dict(self.answers)}; dossiers filed in the rounds: {filed}")
        return per_process

    def close(self) -> None:
        self._stack.close()


def alternate(single: Any, multi: Any, rounds: int, n: int) -> list[float]:
    """``rounds`` rounds of ``n`` submissions on each system, single then multi, then multi
    then single (neither always goes first); returns each round's multi / single rate."""
    ratios = []
    for r in range(rounds):
        order = (single, multi) if r % 2 == 0 else (multi, single)
        rates = {system.label: system.round(n) for system in order}
        ratios.append(rates[multi.label] / rates[single.label])
        print(f"round {r + 1}: " + ", ".join(f"{label} {rate:.1f}/s" for label, rate in rates.items())
              + f"; ratio {ratios[-1]:.3f}")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--quick", action="store_true", help="4 rounds of 100 submissions, 30 in flight")
    parser.add_argument("--dossiers", type=int, default=None, help="submissions per round (default 600)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per system (default 6, --quick 4)")
    parser.add_argument("--concurrency", type=int, default=None, help="in flight (default 60)")
    parser.add_argument("--processes", type=int, default=2, help="dossier and gateway processes of the second system")
    args = parser.parse_args(argv)
    n = args.dossiers or (100 if args.quick else 600)
    rounds = args.rounds or (4 if args.quick else 6)
    concurrency = args.concurrency or (30 if args.quick else 60)
    failures = Failures()
    single = System("1 process each", {"dossier": 1, "gateway": 1}, concurrency, failures)
    multi = System(f"dossier x{args.processes}, gateway x{args.processes}",
                   {"dossier": args.processes, "gateway": args.processes}, concurrency, failures)
    try:
        for system in (single, multi):
            system.start(warm=max(20, n // 5))
        pair_ratios = alternate(single, multi, rounds, n)
        per_process = {system.label: system.check() for system in (single, multi)}
    finally:
        for system in (single, multi):
            system.close()
    print(f"\n{rounds} rounds of {n} submissions per system, alternating, {concurrency} in flight")
    print_measures([(m.label, m.rate, m.latencies, m.failed) for m in (single, multi)], 32)
    print("submissions per dossier process:", json.dumps(per_process))
    return finish("scale", f"dossiers={n} rounds={rounds} concurrency={concurrency} processes={args.processes} "
                  f"multi_per_s={multi.rate:.1f} multi_p50_ms={ms(multi.latencies, 50):.1f} "
                  f"multi_p99_ms={ms(multi.latencies, 99):.1f} "
                  f"single_per_s={single.rate:.1f} single_p50_ms={ms(single.latencies, 50):.1f} "
                  f"single_p99_ms={ms(single.latencies, 99):.1f} "
                  f"round_ratio_median={statistics.median(pair_ratios):.3f} "
                  f"round_ratio_min={min(pair_ratios):.3f} ratio={multi.rate / single.rate:.3f}", failures)
