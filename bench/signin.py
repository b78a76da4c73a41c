"""``python -m bench signin [--quick] [--gateway-url URL]``: what sign-in costs through the gateway.

Measures, with the same number of requests and clients in flight, through the running system:
the baseline (``POST /api/v1/auth/challenge``: one RPC to identity, one INSERT, no crypto),
the password step of a sign-in (``POST /api/v1/auth/login``: one Argon2id verification, a
pending sign-in with its one-time code, one message to the SMS stand-in) and a token refresh
(``POST /api/v1/auth/refresh``: refresh-token lookup and rotation, an EdDSA access token).
Each client has its own citizen account, registered before the clock starts. The three
measures run in five alternating chunks, their seconds summed, so load from other work on a
shared machine falls on all three alike.

Without ``--gateway-url`` it starts the whole system on a throw-away database (the local
stand-ins on, per-number code budget lifted). Last line: ``RESULT signin password_per_s=...
baseline_per_s=... password_ratio=... refresh_per_s=... refresh_ratio=... p50/p99 ...``, or
``FAILED signin errors=N`` when any request of any measure (the baseline's too) failed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from bench.support import Failures, bench_server, finish, ms, print_measures, throwaway_database
from portal_common import config

ROUNDS = 5


def _measure(clients: int, per_client: int, one) -> tuple[float, list[float], int]:
    """Each client runs ``one(client, i)`` ``per_client`` times in a row; all clients at once.
    A call that returns false or raises is a failure."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    gate = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        gate.wait()
        for i in range(per_client):
            t0 = time.perf_counter()
            try:
                ok = one(k, i)
            except Exception:
                ok = False
            latencies[k].append(time.perf_counter() - t0)
            failures[k] += 0 if ok else 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started, [x for lat in latencies for x in lat], sum(failures)


Totals = dict[str, tuple[float, list[float], int]]


def measure_alternating(clients: int, per_client: int, measures: Sequence[tuple[str, Callable[[int, int], bool]]],
                        failures: Failures, header: str, width: int) -> tuple[Totals, int]:
    """Run each ``(name, one)`` of ``measures`` in ``ROUNDS`` alternating chunks, their seconds summed,
    so load from other work on a shared machine falls on all alike; print the table (``header``
    formatted with ``n`` and ``clients``) and count every failure. Returns the summed
    ``name -> (seconds, latencies, failed)`` and ``n``, the requests per measure."""
    results: Totals = {name: (0.0, [], 0) for name, _ in measures}
    chunk = max(1, per_client // ROUNDS)
    for r in range(ROUNDS):
        order = measures if r % 2 == 0 else measures[::-1]
        for name, fn in order:
            secs, lat, failed = _measure(clients, chunk, fn)
            total = results[name]
            results[name] = (total[0] + secs, total[1] + lat, total[2] + failed)
    n = clients * chunk * ROUNDS
    print(header.format(n=n, clients=clients))
    print_measures([(name, n / secs, lat, failed) for name, (secs, lat, failed) in results.items()], width)
    for name, (_, _, failed) in results.items():
        failures.add(name, failed)
    return results, n


def run(gateway_url: str, clients: int, per_client: int) -> int:
    from tests.support import accounts

    people = [accounts.register_citizen(gateway_url) for _ in range(clients)]
    refresh = [p["refresh_token"] for p in people]
    base = f"{gateway_url}/api/v1/auth"

    def challenge(k: int, i: int) -> bool:
        return bool(accounts.call(f"{base}/challenge", "POST", {"purpose": "login"}, expect=None))

    def password(k: int, i: int) -> bool:
        p = people[k]
        reply = accounts.call(f"{base}/login", "POST", {"method": "password", "cccd": p["cccd"],
                                                        "password": p["password"]}, expect=None)
        return bool(reply and reply.get("login_id"))

    def rotate(k: int, i: int) -> bool:
        reply = accounts.call(f"{base}/refresh", "POST", {"refresh_token": refresh[k]}, expect=None)
        if reply and reply.get("refresh_token"):
            refresh[k] = reply["refresh_token"]
            return True
        return False

    failures = Failures()
    _, _, warm_failed = _measure(clients, 3, challenge)  # warm up connections and workers
    failures.add("warm-up challenge", warm_failed)
    measures = (("baseline: challenge", challenge), ("password step (Argon2id)", password),
                ("token refresh", rotate))
    results, n = measure_alternating(clients, per_client, measures, failures,
                                     "{n} requests per measure, {clients} clients in flight, one account each", 30)
    (bs, bl, _), (ps, pl, _), (rs, rl, _) = results.values()
    base_rate = n / bs
    return finish("signin", f"requests={n} clients={clients} password_per_s={n / ps:.1f} "
                  f"password_p50_ms={ms(pl, 50):.1f} password_p99_ms={ms(pl, 99):.1f} "
                  f"refresh_per_s={n / rs:.1f} refresh_p50_ms={ms(rl, 50):.1f} "
                  f"baseline_per_s={base_rate:.1f} baseline_p50_ms={ms(bl, 50):.1f} "
                  f"password_ratio={(n / ps) / base_rate:.3f} refresh_ratio={(n / rs) / base_rate:.3f}", failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench signin")
    parser.add_argument("--quick", action="store_true", help="4 clients x 25 requests per measure")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per client per measure")
    parser.add_argument("--gateway-url", default=None, help="a running system (default: start one)")
    args = parser.parse_args(argv)
    clients = args.clients or (4 if args.quick else 8)
    per_client = args.requests or (25 if args.quick else 100)
    if args.gateway_url:
        return run(args.gateway_url.rstrip("/"), clients, per_client)
    return on_throwaway_system("signin", config.env_int("BENCH_GATEWAY_PORT", 8766),
                               {"LOCAL_ADAPTERS": "yes", "RATE_SIGNIN": "10000000", "RATE_REGISTER": "100000",
                                "RATE_OTP": "100000", "RATE_DEFAULT": "10000000",
                                "IDENTITY_OTP_MAX_PER_PHONE": "10000000"},
                               lambda url: run(url, clients, per_client))


def on_throwaway_system(name: str, gateway_port: int, extra_env: dict[str, str], run_on: Callable[[str], int]) -> int:
    """Start the whole system on a throw-away database (``extra_env`` lifting its limits), run
    ``run_on(gateway_url)`` once it is ready, and always stop it and drop the database."""
    from deploy.launcher import LocalSystem, migrate_and_seed

    with throwaway_database(f"portal_bench_{name}_{uuid.uuid4().hex[:6]}", bench_server()) as dsn:
        migrate_and_seed(dsn)
        system = LocalSystem(dsn, config.amqp_uri(), gateway_port, extra_env=extra_env)
        system.start()
        try:
            system.wait_ready(timeout=120)
            return run_on(system.gateway_url)
        finally:
            system.stop()


if __name__ == "__main__":
    sys.exit(main())
