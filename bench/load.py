"""``python -m bench load [--quick]``: Locust, headless, driving a portal's mixed traffic.

Starts the whole system on a throw-away database and a private vhost (``--processes`` per
service and gateway, default 1), registers one citizen per simulated user, files one dossier
for the look-ups, then runs Locust headless twice, bounded in users and time, against
127.0.0.1 only: first a baseline of ``/health`` (the gateway answering without a service
behind it), then the portal's mix (``bench/load_users.py``): catalog search 70 %, public
lookup 15 %, sign-in 5 % (password + one-time code, timed as one flow), filing 10 %. It prints
each kind's rate, p50 and p99 and ends with ``RESULT load ... ratio=`` (mixed requests/s over
the baseline's), or ``FAILED load`` with no ratio when any request failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.submit import _bench_server, _filing
from bench.support import Failures, finish, free_port, private_vhost, request_json, throwaway_database
from portal_common import config

USERS_FILE = Path(__file__).with_name("load_users.py")
KINDS = ("search", "lookup", "sign-in", "filing")


def _locust(url: str, data_file: Path, user_class: str, users: int, seconds: int, out: Path) -> dict[str, dict]:
    """One headless Locust run; its per-name stats (from the CSV it writes)."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise SystemExit(f"bench load drives local systems only, not {url}")
    prefix = out / user_class
    cmd = [sys.executable, "-m", "locust", "-f", str(USERS_FILE), user_class, "--headless",
           "--users", str(users), "--spawn-rate", str(max(1, users // 2)), "--run-time", f"{seconds}s",
           "--stop-timeout", "10", "--host", url, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    env = {**os.environ, "BENCH_LOAD_DATA": str(data_file)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise SystemExit(f"locust wrote no statistics (exit {done.returncode}):\n{done.stderr[-2000:]}")
    with stats_file.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def _figures(row: dict) -> tuple[int, int, float, float, float]:
    """count, failures, requests/s, p50 ms, p99 ms of one Locust stats row."""
    def number(key: str) -> float:
        value = row.get(key) or "0"
        return 0.0 if value in ("N/A", "") else float(value)
    return (int(number("Request Count")), int(number("Failure Count")), number("Requests/s"), number("50%"),
            number("99%"))


def _accounts(url: str, count: int) -> list[dict]:
    from tests.support.accounts import register_citizen  # the identity test helper

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: register_citizen(url), range(count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench load")
    parser.add_argument("--quick", action="store_true", help="20 users, 20 s per run")
    parser.add_argument("--users", type=int, default=None, help="simulated users (default 40)")
    parser.add_argument("--seconds", type=int, default=None, help="length of each run (default 60)")
    parser.add_argument("--processes", type=int, default=1, help="processes of every service and the gateway")
    args = parser.parse_args(argv)
    users = args.users or (20 if args.quick else 40)
    seconds = args.seconds or (20 if args.quick else 60)
    if not (1 <= users <= 500 and 5 <= seconds <= 600):
        raise SystemExit("bench load is bounded: 1-500 users, 5-600 seconds")
    from deploy.launcher import LocalSystem, migrate_and_seed

    tag = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    with private_vhost(config.amqp_uri(), f"bench_load_{tag}") as amqp_uri, \
            throwaway_database(f"portal_bench_load_{tag}", _bench_server()) as dsn:
        migrate_and_seed(dsn)
        system = LocalSystem(dsn, amqp_uri, free_port(), log_dir=work / "logs", extra_env={
            "PROCESSES": str(args.processes), "LOCAL_ADAPTERS": "yes", "METRICS_PORT": "0",
            "RATE_LOOKUP": "10000000", "RATE_DEFAULT": "10000000", "RATE_SIGNIN": "10000000",
            "RATE_REGISTER": "100000", "RATE_OTP": "10000000", "IDENTITY_OTP_MAX_PER_PHONE": "10000000",
            "TRUSTED_PROXIES": "127.0.0.1", "DB_POOL_SIZE": "4", "DOSSIER_DB_POOL_SIZE": "10"})
        system.start()
        try:
            system.wait_ready(timeout=150)
            url = system.gateway_url
            accounts = _accounts(url, users)
            filing = _filing(url)
            status, first = request_json(f"{url}/api/v1/dossiers", "POST", filing, {
                "Authorization": f"Bearer {accounts[0]['access_token']}", "Idempotency-Key": uuid.uuid4().hex})
            if status != 201:
                raise SystemExit(f"a first filing answered {status}: {first}")
            data_file = work / "data.json"
            data_file.write_text(json.dumps({"accounts": [{k: a[k] for k in ("cccd", "password", "phone",
                                                                               "access_token")} for a in accounts],
                                             "filing": filing, "lookup_code": first["code"]}))
            baseline = _locust(url, data_file, "HealthUser", users, seconds, work)
            mixed = _locust(url, data_file, "PortalUser", users, seconds, work)
        finally:
            system.stop()

    failures = Failures()
    print(f"{users} users, {seconds} s per run, {args.processes} process(es) per service; Locust CSV in {work}")
    print(f"{'kind':<50}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    rows = [("baseline: /health", baseline.get("health"))]
    rows += [(kind, mixed.get(kind)) for kind in KINDS]
    rows += [(name, row) for name, row in mixed.items() if name.startswith("sign-in step")]
    rows += [("mixed: all (each sign-in also as its steps)", mixed.get("Aggregated"))]
    for name, row in rows:
        if row is None:
            failures.add(f"{name}: no requests")
            print(f"{name:<50}{'-':>10}")
            continue
        count, failed, rps, p50, p99 = _figures(row)
        print(f"{name:<50}{count:>10}{rps:>9.1f}{p50:>9.0f}{p99:>9.0f}{failed:>8}")
    for name, row in [*baseline.items(), *mixed.items()]:
        if name != "Aggregated":
            failures.add(f"{name} failed", _figures(row)[1])
    figures = {kind: _figures(mixed[kind]) for kind in KINDS if kind in mixed}
    # HTTP requests only: the sign-in FLOW line times requests already counted as its steps
    total = sum(_figures(row)[2] for name, row in mixed.items() if name not in ("Aggregated", "sign-in"))
    base = _figures(baseline["health"])[2] if "health" in baseline else 0.0
    parts = " ".join(f"{kind.replace('-', '_')}_per_s={f[2]:.1f} {kind.replace('-', '_')}_p50_ms={f[3]:.0f} "
                     f"{kind.replace('-', '_')}_p99_ms={f[4]:.0f}" for kind, f in figures.items())
    return finish("load", f"users={users} seconds={seconds} processes={args.processes} {parts} "
                  f"mixed_per_s={total:.1f} baseline_health_per_s={base:.1f} "
                  f"ratio={(total / base) if base else 0.0:.3f}", failures)
