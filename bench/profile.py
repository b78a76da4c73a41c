"""``python -m bench profile [--quick]``: where a submission's CPU and SQL go, per process and step.

Starts the whole system on a PostgreSQL cluster of its own (``initdb`` into a temporary folder,
a free port, ``pg_stat_statements`` preloaded, so the statistics count this system's statements
only) and a RabbitMQ vhost of its own, signs a citizen in and files a steady stream of
submissions (``--concurrency`` in flight) until every one has been delivered to its agency and
noticed to the applicant by SMS. Meanwhile ``py-spy`` samples every service process (the
gateway, dossier, catalog, identity, router; the outbox relays run inside their services), and
``psutil`` reads each process's CPU time before and after (PostgreSQL's backends and the
broker's ``beam.smp`` included), and the kernel's schedstat the time each was runnable but
waiting for a CPU. Printed: CPU ms and waiting ms per submission per process, the samples of
each process split into steps (JSON, base64, schema validation, token check, RPC and AMQP
messaging, SQL round trips, hashing, the relay's publishing, ...) in CPU ms per submission,
and the statements ``pg_stat_statements`` counted (top level only: a multi-statement round trip
counts each of its statements), as calls per submission, with their planning time.

Then, on the same system, as many public lookups of a filed dossier (``bench submit``'s
baseline: one RPC, one index probe) at the same concurrency, with the CPU of every process
read the same way: the table beside the submission's says what each process spends on a
submission against a lookup, the client (this process) included. On a machine whose CPU is
the bound, ``bench submit``'s rate ratio can reach no more than the lookup's CPU over the
submission's (``cpu_ratio``).

py-spy counts a thread as busy whenever it is not asleep, so a process that woke another with
a socket ``send`` and then waits for the CPU is sampled inside that ``send``: on a saturated
machine the "green threads and I/O" step holds much of that wait. ``--gil`` samples only
threads holding the GIL: Python's own work, without system calls and most of that wait.

The broker is the machine's shared one: its CPU figure includes whatever else uses it.
Needs ``initdb``/``pg_ctl`` (``/usr/lib/postgresql/*/bin``) and ``py-spy``; when run as root the
cluster runs as the ``postgres`` user. ``--no-py-spy`` skips the sampling.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg2

from bench.submit import _citizen_token, _filing_and_agency, _places
from bench.support import Failures, finish, free_port, private_vhost, request_json
from portal_common import config

# (step, substrings of a frame "function (file:line)"), first match from the leaf up wins
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("base64", ("base64", "binascii")),
    ("hashing (sha256, chain hash)", ("hashlib", "filing_hash", "event_hash", "_sha256")),
    ("token check (EdDSA, JWT)", ("jwt/", "joserfc", "authlib", "cryptography", "verify_token", "tokens.py")),
    ("schema validation (marshmallow)", ("marshmallow", "contracts/__init__", "validate (")),
    ("JSON encode/decode", ("json/", "orjson", "fastjson", "simplejson", "_json")),
    ("SQL round trips (psycopg2)", ("psycopg2", "psycogreen", "eventstore/store.py", "db.py")),
    ("outbox relay publishing", ("outbox.py",)),
    ("SMS and notices", ("notices", "notifications", "sms")),
    ("router delivery", ("router/application", "router/channels", "router/repository")),
    ("RPC/AMQP messaging (kombu, amqp, nameko)", ("kombu", "amqp/", "nameko/rpc", "nameko/messaging",
                                                 "nameko/events", "nameko/amqp", "entrypoints.py")),
    ("HTTP (werkzeug, eventlet.wsgi)", ("werkzeug", "wsgi")),
    ("logging and metrics", ("logging/", "logs.py", "metrics.py", "prometheus")),
    ("green threads and I/O (eventlet)", ("eventlet", "greenlet", "select", "socket")),
]
SERVICES = ("gateway", "dossier", "catalog", "identity", "router")


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise SystemExit(f"bench profile needs PostgreSQL's {name} (e.g. /usr/lib/postgresql/*/bin)")
    return found


@contextlib.contextmanager
def private_postgres() -> Iterator[tuple[str, int]]:
    """A throw-away PostgreSQL cluster with pg_stat_statements: (server URL, postmaster pid)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-profile-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as postgres
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*as_user, _pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 "
               "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top "
               "-c pg_stat_statements.track_utility=on -c pg_stat_statements.track_planning=on "
               "-c shared_buffers=128MB")
    subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                    "start"], check=True, capture_output=True)
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield f"postgresql://postgres@127.0.0.1:{port}", pid
    finally:
        subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _cpu(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def _runqueue_wait(proc: psutil.Process) -> float:
    """Seconds the threads of ``proc`` have spent runnable but waiting for a CPU (Linux
    schedstat; 0 where the kernel does not keep it)."""
    total = 0
    for stat in glob.glob(f"/proc/{proc.pid}/task/*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(stat).read_text().split()[1])
    return total / 1e9


class CpuMeter:
    """CPU seconds of named process groups between ``start`` and ``stop``; groups may gain
    processes while measuring (PostgreSQL backends come and go)."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]):
        self.groups = groups
        self._before: dict[int, tuple[float, float]] = {}
        self.used: dict[str, float] = {}
        self.waited: dict[str, float] = {}

    def _procs(self) -> dict[str, list[psutil.Process]]:
        return {name: list(find()) for name, find in self.groups.items()}

    def start(self) -> None:
        self._before = {p.pid: (_cpu(p), _runqueue_wait(p)) for procs in self._procs().values() for p in procs}

    def stop(self) -> None:
        procs = self._procs()
        self.used = {name: sum(max(_cpu(p) - self._before.get(p.pid, (0.0, 0.0))[0], 0.0) for p in group)
                     for name, group in procs.items()}
        self.waited = {name: sum(max(_runqueue_wait(p) - self._before.get(p.pid, (0.0, 0.0))[1], 0.0)
                                 for p in group) for name, group in procs.items()}


def _step(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # from the leaf up
        low = frame.lower()
        for step, needles in STEPS:
            if any(n in low for n in needles):
                return step
    return "other Python"


def _read_raw(path: Path) -> Counter[str]:
    steps: Counter[str] = Counter()
    if not path.exists():
        return steps
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            steps[_step(stack)] += int(count)
    return steps


def _downstream(dsn: str) -> tuple[int, int]:
    """(delivered to the agency, SMS notices sent) of DossierSubmitted events."""
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM router.deliveries WHERE event_type = 'DossierSubmitted' "
                    "AND status IN ('sent', 'acknowledged')), (SELECT count(*) FROM identity.applicant_notices "
                    "WHERE event_type = 'DossierSubmitted' AND status = 'sent')")
        return cur.fetchone()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench profile")
    parser.add_argument("--quick", action="store_true", help="200 submissions")
    parser.add_argument("--dossiers", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--no-py-spy", action="store_true")
    parser.add_argument("--gil", action="store_true",
                        help="sample only threads holding the GIL: Python's own work, without system calls "
                             "and without the time a process waits for a CPU")
    parser.add_argument("--top", type=int, default=60, help="statements listed")
    parser.add_argument("--places", type=int, default=1,
                        help="file the measured stream from this many applicants' places in turn, none of them "
                             "the warm-up's (default 1: the warm-up's place)")
    parser.add_argument("--applicants", type=int, default=1,
                        help="file the measured stream as this many citizens in turn, each registered before it "
                             "and none of them the warm-up's (default 1: the warm-up's citizen)")
    parser.add_argument("--keep-samples", type=Path, default=None, metavar="DIR",
                        help="keep py-spy's raw stacks, one file per service, in DIR")
    args = parser.parse_args(argv)
    n = args.dossiers or (200 if args.quick else 1000)
    py_spy = None if args.no_py_spy else shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if py_spy and not Path(py_spy).exists():
        print("py-spy not found: sampling skipped", file=sys.stderr)
        py_spy = None
    base_uri = config.amqp_uri()
    with private_postgres() as (server, postmaster), \
            private_vhost(base_uri, f"bench_profile_{uuid.uuid4().hex[:8]}") as amqp_uri:
        return _profile(server, postmaster, amqp_uri, n, args.concurrency, py_spy, args.rate, args.top,
                        args.keep_samples, args.gil, args.places, args.applicants)


def _profile(server: str, postmaster: int, amqp_uri: str, n: int, concurrency: int, py_spy: str | None,
             rate: int, top: int, keep_samples: Path | None = None, gil: bool = False, places: int = 1,
             applicants: int = 1) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from deploy.launcher import LocalSystem, migrate_and_seed

    dsn = f"{server}/portal_profile"
    with contextlib.closing(psycopg2.connect(f"{server}/postgres")) as conn:
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE portal_profile")
    migrate_and_seed(dsn)
    with contextlib.closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        conn.cursor().execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    logs = Path(tempfile.mkdtemp(prefix="bench-profile-logs-"))
    system = LocalSystem(dsn, amqp_uri, free_port(), log_dir=logs,
                         extra_env={"LOCAL_ADAPTERS": "yes", "RATE_LOOKUP": "10000000", "RATE_DEFAULT": "10000000",
                                    "RATE_SIGNIN": "100000", "RATE_REGISTER": "100000", "RATE_OTP": "100000"})
    failures = Failures()
    spies: list[subprocess.Popen] = []
    out = Path(tempfile.mkdtemp(prefix="bench-profile-spy-"))
    system.start()
    try:
        system.wait_ready(timeout=120)
        url = system.gateway_url
        auth = {"Authorization": f"Bearer {_citizen_token(url)}"}
        citizens = [auth]
        if applicants > 1:
            with ThreadPoolExecutor(4) as pool:
                citizens = [{"Authorization": f"Bearer {token}"}
                            for token in pool.map(lambda _i: _citizen_token(url), range(applicants))]
            print(f"the measured stream files as {len(citizens)} citizens, none of them the warm-up's")
        filing, agency = _filing_and_agency(url)
        spread = _places(url, agency, places)
        measured = [dict(filing, applicant=dict(filing["applicant"], **place)) for place in spread] or [filing]
        if places > 1:
            print(f"the measured stream files from {len(measured)} places, none of them the warm-up's")

        codes: list[str] = []

        def submit(i: int, warm_up: bool = False) -> bool:
            body_sent = filing if warm_up else measured[i % len(measured)]
            who = auth if warm_up else citizens[i % len(citizens)]
            status, body = request_json(f"{url}/api/v1/dossiers", "POST", body_sent,
                                        dict(who, **{"Idempotency-Key": uuid.uuid4().hex}))
            if status != 201:
                failures.add(f"submission answered {status}")
            elif not codes:
                codes.append(body["code"])
            return status == 201

        def lookup(_i: int) -> bool:
            status, _ = request_json(f"{url}/api/v1/lookup/{codes[0]}")
            if status != 200:
                failures.add(f"lookup answered {status}")
            return status == 200

        with ThreadPoolExecutor(concurrency) as pool:  # warm every process and connection
            list(pool.map(lambda i: submit(i, warm_up=True), range(min(40, n))))
        warm = min(40, n)
        _wait_downstream(dsn, warm, 60)
        pids = {name: proc.pid for name, proc in system.processes.items()}
        groups = {name: (lambda pid=pid: [psutil.Process(pid)]) for name, pid in pids.items()}
        groups["postgresql"] = lambda: [psutil.Process(postmaster), *psutil.Process(postmaster).children()]
        groups["rabbitmq (shared)"] = lambda: [p for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"]
        groups["bench client"] = lambda: [psutil.Process()]
        meter = CpuMeter(groups)
        with contextlib.closing(psycopg2.connect(dsn)) as conn:
            conn.autocommit = True
            conn.cursor().execute("SELECT pg_stat_statements_reset()")
        if py_spy:
            for name, pid in pids.items():
                command = [py_spy, "record", "--nonblocking", "--rate", str(rate), "--format", "raw",
                           "--pid", str(pid), "--output", str(out / f"{name}.txt"), *(["--gil"] if gil else [])]
                spies.append(subprocess.Popen(command,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)
        meter.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            ok = sum(pool.map(submit, range(n)))
        answered = time.perf_counter() - started
        delivered, noticed = _wait_downstream(dsn, warm + n, 120)
        finished = time.perf_counter() - started
        meter.stop()
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        statements = _statements(dsn)
        lookups = CpuMeter(groups)
        with ThreadPoolExecutor(concurrency) as pool:  # warm the lookup's path
            list(pool.map(lookup, range(min(40, n))))
        lookups.start()
        looked_up = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            found = sum(pool.map(lookup, range(n)))
        looked_up = time.perf_counter() - looked_up
        lookups.stop()
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
        system.stop()
    samples = {name: _read_raw(out / f"{name}.txt") for name in SERVICES} if py_spy else {}
    if keep_samples is not None and py_spy:
        keep_samples.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            if (out / f"{name}.txt").exists():
                shutil.copy(out / f"{name}.txt", keep_samples / f"{name}.txt")
    shutil.rmtree(out, ignore_errors=True)
    if ok != n:
        failures.add("submissions not filed", n - ok)
    if delivered - warm != n:
        failures.add("not delivered to the agency", abs(n - (delivered - warm)) or 1)
    if noticed - warm != n:
        failures.add("no SMS notice", abs(n - (noticed - warm)) or 1)
    if found != n:
        failures.add("lookups not answered", n - found)
    return _report(n, concurrency, answered, finished, meter.used, meter.waited, samples, statements, top,
                   failures, (looked_up, lookups.used), len(measured), len(citizens))


def _wait_downstream(dsn: str, expected: int, timeout: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        delivered, noticed = _downstream(dsn)
        if (delivered >= expected and noticed >= expected) or time.monotonic() > deadline:
            return delivered, noticed
        time.sleep(0.2)


def _statements(dsn: str) -> list[tuple[str, int, float, float]]:
    """(statement, calls, execution ms, planning ms) of each statement, the most called first."""
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT query, calls, total_exec_time, total_plan_time FROM pg_stat_statements "
                    "WHERE query NOT LIKE '%%pg_stat_statements%%' ORDER BY calls DESC")
        return [(q, int(c), float(t), float(p)) for q, c, t, p in cur.fetchall()]


def _report(n: int, concurrency: int, answered: float, finished: float, cpu: dict[str, float],
            waited: dict[str, float], samples: dict[str, Counter[str]],
            statements: list[tuple[str, int, float, float]], top: int, failures: Failures,
            lookups: tuple[float, dict[str, float]], places: int = 1, applicants: int = 1) -> int:
    print(f"{n} submissions, {concurrency} in flight: answered in {answered:.1f} s ({n / answered:.1f}/s), "
          f"delivered and noticed in {finished:.1f} s")
    print("\nms per submission, per process: on a CPU, and runnable but waiting for one")
    print(f"  {'process':<22} {'CPU':>8} {'waiting':>8}")
    total = total_wait = 0.0
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {seconds * 1000 / n:8.2f} {waited.get(name, 0.0) * 1000 / n:8.2f}")
        if "shared" not in name and name != "bench client":
            total += seconds
            total_wait += waited.get(name, 0.0)
    print(f"  {'total (broker aside)':<22} {total * 1000 / n:8.2f} {total_wait * 1000 / n:8.2f}")
    looked_up, lookup_cpu = lookups
    print(f"\nCPU ms per request, per process: a submission (until delivered and noticed) beside a public "
          f"lookup ({n} at {concurrency} in flight, {n / looked_up:.1f}/s)")
    print(f"  {'process':<22} {'submission':>10} {'lookup':>8}")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {seconds * 1000 / n:10.2f} {lookup_cpu.get(name, 0.0) * 1000 / n:8.2f}")
    submission_all = sum(cpu.values()) * 1000 / n
    lookup_all = sum(lookup_cpu.values()) * 1000 / n
    print(f"  {'all of them':<22} {submission_all:10.2f} {lookup_all:8.2f}   lookup / submission: "
          f"{lookup_all / submission_all:.3f}")
    if samples:
        print("\nCPU ms per submission, per step (py-spy samples of each process, scaled to its CPU time)")
        by_step: dict[str, dict[str, float]] = defaultdict(dict)
        for name, counts in samples.items():
            all_samples = sum(counts.values())
            for step, count in counts.items():
                if all_samples:
                    by_step[step][name] = cpu.get(name, 0.0) * count / all_samples * 1000 / n
        header = "".join(f"{s:>9}" for s in SERVICES)
        print(f"  {'step':<42}{header}{'total':>9}")
        for step, per in sorted(by_step.items(), key=lambda kv: -sum(kv[1].values())):
            cells = "".join(f"{per.get(s, 0.0):9.2f}" for s in SERVICES)
            print(f"  {step:<42}{cells}{sum(per.values()):9.2f}")
    calls = sum(c for _, c, _, _ in statements)
    db_ms = sum(t for _, _, t, _ in statements)
    plan_ms = sum(p for _, _, _, p in statements)
    print(f"\nSQL statements per submission: {calls / n:.1f} (server time {db_ms / n:.2f} ms, lock waits "
          f"included; planning {plan_ms / n:.2f} ms); the most called:")
    print(f"  {'calls/sub':>9} {'ms/call':>8} {'plan ms':>8}  statement")
    for query, c, t, p in statements[:top]:
        text = " ".join(query.split())
        print(f"  {c / n:9.2f} {t / max(c, 1):8.3f} {p / max(c, 1):8.3f}  {text[:100]}")
    cpu_ms = total * 1000 / n
    return finish("profile", f"dossiers={n} concurrency={concurrency} places={places} applicants={applicants} "
                  f"cpu_ms_per_submission={cpu_ms:.1f} "
                  f"sql_calls_per_submission={calls / n:.1f} sql_ms_per_submission={db_ms / n:.2f} "
                  f"sql_plan_ms_per_submission={plan_ms / n:.2f} "
                  f"cpu_wait_ms_per_submission={total_wait * 1000 / n:.1f} "
                  f"submits_per_s={n / answered:.1f} all_cpu_ms_per_submission={submission_all:.1f} "
                  f"all_cpu_ms_per_lookup={lookup_all:.2f} cpu_ratio={lookup_all / submission_all:.3f}", failures)

