"""Helpers shared by the benchmarks: a free port, a percentile, a JSON request, a private
RabbitMQ vhost, a throw-away database, and the rule every benchmark ends by (``finish``: a run
that met a failed request prints no ratio). Not a benchmark itself: ``python -m bench`` does
not list it."""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import psutil
import psycopg2

from portal_common import config
from portal_common.db import drop_database, ensure_database


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pool(items: Iterable[Any], concurrency: int, one: Callable[[Any], bool]) -> tuple[float, list[float], int]:
    """``one(item)`` for every item, ``concurrency`` at once: seconds, latencies and failures (a
    call that returns false or raises)."""
    def timed(item: Any) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            ok = one(item)
        except Exception:
            ok = False
        return time.perf_counter() - started, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(timed, items))
    return time.perf_counter() - started, [r[0] for r in results], sum(not r[1] for r in results)


@contextlib.contextmanager
def collector_held() -> Iterator[None]:
    """This process's garbage collector collected once, then held off for one bounded measure.

    The load generator's heap (the launcher, the drivers, the threads of the calls in flight) takes
    a full collection 40-118 ms, and every request thread stops for it: an open loop would count
    that pause as the system's latency. Garbage made meanwhile is freed by reference counting;
    cycles wait for the end of the measure."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cpu_ticks() -> tuple[int, int, int] | None:
    """The machine's CPU time so far, in ticks: (busy, stolen, all), from ``/proc/stat``; None
    where there is no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq + softirq + steal


class MachineCpu:
    """What the machine's CPUs did during a measure: busy and stolen shares of all CPU time, and
    the largest stolen share in any second (a hypervisor that takes the CPUs away for a moment
    stalls every process at once, which an open loop's p99 shows). Sampled every quarter
    second by a thread; ``summary`` is None where ``/proc/stat`` is missing."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            ticks = _cpu_ticks()
            if ticks is not None:
                self.samples.append(ticks)
            if self._stop.wait(0.25):
                ticks = _cpu_ticks()
                if ticks is not None:
                    self.samples.append(ticks)
                return

    def __enter__(self) -> MachineCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> tuple[float, float, float] | None:
        """(busy %, stolen %, the largest stolen % in one second), or None."""
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        total = max(last[2] - first[2], 1)
        worst, step = 0.0, min(4, len(self.samples) - 1)  # a second, or the whole of a shorter measure
        for i in range(len(self.samples) - step):
            a, b = self.samples[i], self.samples[i + step]
            worst = max(worst, 100.0 * (b[1] - a[1]) / max(b[2] - a[2], 1))
        return 100.0 * (last[0] - first[0]) / total, 100.0 * (last[1] - first[1]) / total, worst


def bench_server() -> str:
    """The PostgreSQL server of ``BENCH_DATABASE_URL`` (without a database name)."""
    return config.env("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/portal_bench").rsplit("/", 1)[0]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (1-99) of ``values``, ``statistics.quantiles``' inclusive method;
    the only value for one sample, 0.0 for none."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def nearest_rank(values: list[float], p: float) -> float:
    """The sample nearest to rank ``p``% of the way through (``percentile`` interpolates)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class KeepAlive:
    """One keep-alive HTTP connection to a port of 127.0.0.1. A broken connection is added to
    ``failures`` and opened again, so a client goes on after it."""

    def __init__(self, port: int, failures: Failures, headers: dict | None = None):
        self.port, self.failures, self.headers = port, failures, headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def fetch(self, path: str) -> tuple[int, bytes] | None:
        """``GET path``: its status and body, or None when the connection broke."""
        try:
            self.conn.request("GET", path, headers=self.headers)
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.failures.add(type(exc).__name__)
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return None
        return resp.status, body

    def close(self) -> None:
        self.conn.close()


def ms(latencies: list[float], q: float) -> float:
    """The ``q``-th percentile of latencies in seconds, in milliseconds."""
    return percentile(latencies, q) * 1000


def print_measures(rows: list[tuple[str, float, list[float], int]], width: int) -> None:
    """The table of a run: each measure's rate, p50 and p99 latency and failed requests."""
    print(f"{'measure':<{width}}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, rate, latencies, failed in rows:
        print(f"{name:<{width}}{rate:>10.1f}{ms(latencies, 50):>10.1f}{ms(latencies, 99):>10.1f}{failed:>8}")


def request_json(url: str, method: str = "GET", body: Any = None, headers: dict | None = None,
                 timeout: float = 120) -> tuple[int, Any]:
    """One JSON request: its status and decoded body (an HTTP error is an answer, not raised)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _rabbitmqctl(*args: str) -> bool:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60).returncode == 0


def process_cpu(process: psutil.Process) -> float:
    """Seconds of CPU (user and system) ``process`` has used."""
    times = process.cpu_times()
    return times.user + times.system


def local_broker(benchmark: str) -> psutil.Process:
    """RabbitMQ's process on this machine (``beam.smp``), for a benchmark that reads its CPU;
    exits naming ``benchmark`` when there is none."""
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            return process
    raise SystemExit(f"bench {benchmark} reads the broker's CPU: RabbitMQ (beam.smp) must run on this machine")


@contextlib.contextmanager
def private_vhost(base_uri: str, name: str) -> Iterator[str]:
    """``base_uri`` pointed at a new vhost ``name`` (its user given every permission), deleted on
    exit, so that no other system on a shared broker answers this run's RPCs. Yields ``base_uri``
    itself when the broker is not local or ``rabbitmqctl`` is missing."""
    base = urlparse(base_uri)
    made = (base.hostname in ("127.0.0.1", "localhost") and shutil.which("rabbitmqctl") is not None
            and _rabbitmqctl("add_vhost", name)
            and _rabbitmqctl("set_permissions", "-p", name, base.username or "guest", ".*", ".*", ".*"))
    try:
        yield urlunparse(base._replace(path="/" + quote(name, safe=""))) if made else base_uri
    finally:
        if made:
            _rabbitmqctl("delete_vhost", name)


@contextlib.contextmanager
def throwaway_database(name: str, server: str | None = None) -> Iterator[str]:
    """The DSN of a new database ``name`` on ``server`` (default: the configured database's
    server), dropped on exit; a failed drop is reported on stderr, not raised."""
    dsn = f"{server or config.database_url().rsplit('/', 1)[0]}/{name}"
    try:
        ensure_database(dsn)
        yield dsn
    finally:
        try:
            drop_database(dsn)
        except psycopg2.Error as exc:
            print(f"could not drop {dsn}: {exc}", file=sys.stderr)


class Failures:
    """The failed requests or operations of a run, counted by what went wrong (``"401
    invalid_token"``, ``"ConnectionResetError"``), safe to add to from many client threads."""

    def __init__(self) -> None:
        self._kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, kind: str, count: int = 1) -> None:
        if count:
            with self._lock:
                self._kinds[kind] += count

    @property
    def total(self) -> int:
        return sum(self._kinds.values())

    def kinds(self) -> dict[str, int]:
        with self._lock:
            return dict(self._kinds)

    def __str__(self) -> str:
        return ", ".join(f"{kind} x{n}" for kind, n in self._kinds.most_common(5))


def finish(name: str, figures: str, failures: Failures | int) -> int:
    """End a benchmark run: print ``RESULT <name> <figures>`` and return 0 when nothing failed;
    otherwise print ``FAILED <name> errors=N`` and return 1, with no ratio: figures measured
    over refused requests (a 401 or 429 answered in a microsecond) do not measure what the
    benchmark says they do. Call it after printing the table, which shows the errors."""
    count = failures.total if isinstance(failures, Failures) else int(failures)
    if count:
        detail = f" ({failures})" if isinstance(failures, Failures) and str(failures) else ""
        print(f"FAILED {name} errors={count}{detail}")
        return 1
    print(f"RESULT {name} {figures} errors=0")
    return 0
