"""``python -m bench rpc [--quick]``: an RPC round trip, its request transient against persistent.

Options: ``--slices N`` per way (8, 4 with ``--quick``), ``--calls N`` per slice (300).

Starts a one-method service (``EchoService`` below, on the shared entrypoints, so its replies
go as every service's do) with ``nameko run`` on a private vhost, and calls it one call at a
time from nameko's standalone client, in alternating slices: with the request persistent
(nameko's default, the baseline) and transient (``portal_common.entrypoints.RPC_DELIVERY_MODE``,
what the services and the gateway send). Reported per call: the broker's CPU (``beam.smp``,
which must run on this machine), the service's and this client's, and the round trip's p50 and
p99. A call that raises or answers something else is counted as failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nameko.amqp.publish
import psutil
from nameko.constants import PERSISTENT
from nameko.standalone.rpc import ClusterRpcProxy

from bench.support import Failures, finish, local_broker, ms, private_vhost, process_cpu
from portal_common.entrypoints import RPC_DELIVERY_MODE, rpc

ROOT = Path(__file__).resolve().parents[1]
WAYS = (("persistent", PERSISTENT), ("transient", RPC_DELIVERY_MODE))
VALUE = {"code": "P01-BHXH-261208-0001", "account_id": str(uuid.uuid4())}  # about a lookup's size


class EchoService:
    """The probe service: answers with what it was sent."""

    name = "bench_echo"

    @rpc
    def echo(self, value: dict) -> dict:
        return value



def _slice(proxy, calls: int, failures: Failures, processes: dict[str, psutil.Process]) -> dict:
    """``calls`` round trips: seconds of CPU per process, the latencies and the wall time."""
    before = {name: process_cpu(p) for name, p in processes.items()}
    client, wall = time.process_time(), time.perf_counter()
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        try:
            if proxy.bench_echo.echo(VALUE) != VALUE:
                failures.add("wrong answer")
                continue
        except Exception as exc:  # counted: a benchmark with a failure prints no ratio
            failures.add(type(exc).__name__)
            continue
        latencies.append(time.perf_counter() - started)
    cpu = {name: process_cpu(p) - before[name] for name, p in processes.items()}
    cpu["client"] = time.process_time() - client
    return {"cpu": cpu, "latencies": latencies, "wall": time.perf_counter() - wall, "calls": calls}


def _wait_ready(uri: str, service: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and service.poll() is None:
        try:
            with ClusterRpcProxy({"AMQP_URI": uri}, timeout=2) as proxy:
                proxy.bench_echo.echo(VALUE)
                return
        except Exception:
            time.sleep(0.3)
    raise SystemExit("the echo service did not answer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rpc")
    parser.add_argument("--quick", action="store_true", help="4 slices per way")
    parser.add_argument("--slices", type=int, default=None)
    parser.add_argument("--calls", type=int, default=300, help="calls per slice")
    args = parser.parse_args(argv)
    slices = args.slices or (4 if args.quick else 8)
    base = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    failures = Failures()
    results: dict[str, list[dict]] = {way: [] for way, _ in WAYS}
    broker = local_broker("rpc")
    with private_vhost(base, f"bench_rpc_{uuid.uuid4().hex[:8]}") as uri:
        service = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--broker", uri, "bench.rpc:EchoService"],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(uri, service)
            processes = {"broker": broker, "service": psutil.Process(service.pid)}
            with ClusterRpcProxy({"AMQP_URI": uri}, timeout=10) as proxy:
                _slice(proxy, 100, failures, processes)  # warm: connections, queues, pools
                for n in range(slices):
                    for way, mode in WAYS if n % 2 == 0 else WAYS[::-1]:
                        nameko.amqp.publish.Publisher.delivery_mode = mode
                        results[way].append(_slice(proxy, args.calls, failures, processes))
        finally:
            nameko.amqp.publish.Publisher.delivery_mode = PERSISTENT
            service.terminate()
            service.wait(timeout=30)
    print(f"{slices} alternating slices of {args.calls} calls per way, one call at a time; "
          "replies transient in both (the services' own)")
    print(f"{'request':<26}{'broker ms':>11}{'service ms':>12}{'client ms':>11}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'calls/s':>9}")
    figures = {}
    for way, _ in WAYS:
        runs = results[way]
        calls = sum(r["calls"] for r in runs)
        per_call = {k: sum(r["cpu"][k] for r in runs) / calls * 1e3 for k in ("broker", "service", "client")}
        latencies = [x for r in runs for x in r["latencies"]]
        rate = calls / sum(r["wall"] for r in runs)
        figures[way] = (per_call, latencies, rate)
        label = "baseline: persistent" if way == "persistent" else "transient"
        print(f"{label:<26}{per_call['broker']:>11.3f}{per_call['service']:>12.3f}{per_call['client']:>11.3f}"
              f"{ms(latencies, 50):>9.2f}{ms(latencies, 99):>9.2f}{rate:>9.0f}")
    (now, now_lat, now_rate), (old, old_lat, old_rate) = figures["transient"], figures["persistent"]
    return finish("rpc", f"calls={sum(r['calls'] for w in results.values() for r in w)} "
                  f"broker_ms={now['broker']:.3f} baseline_broker_ms={old['broker']:.3f} "
                  f"broker_ratio={now['broker'] / old['broker'] if old['broker'] else float('nan'):.3f} "
                  f"p50_ms={ms(now_lat, 50):.2f} baseline_p50_ms={ms(old_lat, 50):.2f} "
                  f"p99_ms={ms(now_lat, 99):.2f} baseline_p99_ms={ms(old_lat, 99):.2f} "
                  f"per_s={now_rate:.0f} baseline_per_s={old_rate:.0f} rate_ratio={now_rate / old_rate:.3f}",
                  failures)


if __name__ == "__main__":
    raise SystemExit(main())
