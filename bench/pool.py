"""``python -m bench pool [--quick]``: a filing on a new database connection against one on a connection kept open.

Options: ``--filings N`` per slice (50, 20 with ``--quick``), ``--slices N`` per way (4, 2).

A service's pool opens connections in a burst and, after a quiet spell, closes them
(``DB_POOL_IDLE_TIMEOUT``) down to ``DB_POOL_MIN_IDLE``. This measures what a closed one costs
the next burst: the dossier service's filing (``Repository.submit``, one round trip) on a
connection opened for it, against the same filing on a connection already used, in
alternating slices on a throw-away database. Per filing: the wall time, this process's CPU,
and the server's: the backend's, read from its process before its connection closes (so a new
connection's figure includes the backend's start: its catalogue, the log's functions, every
statement planned again), and the postmaster's, which forks it. A third way files on a
connection the pool opened ahead (``Database.open_floor``, as a service does when it starts) and
never used: what opening the floor at start saves a restarted process's first requests, and
what it does not (the statements are still planned on their first use). The server is assumed
quiet otherwise. A filing that raises fails the run.
"""

from __future__ import annotations

import argparse
import time
import uuid

import psutil

from bench.submit import file_one
from bench.support import Failures, bench_server, finish, nearest_rank, process_cpu, throwaway_database
from portal_common.db import Database
from portal_common.eventstore import EventStore
from portal_common.migrations import migrate
from services.dossier.application import on_postgres

AGENCY = "BENCH-POOL"


def _backend(db: Database) -> psutil.Process:
    """The server process behind the pool's one connection."""
    with db.connection() as conn:
        return psutil.Process(conn.get_backend_pid())



class Ways:
    """The three ways of one filing, each returning (wall s, Python CPU s, server CPU s: the
    backend's and the postmaster's, which forks a new connection's backend)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.kept = self._pool()
        self.kept_repo = on_postgres(self.kept, EventStore(self.kept))
        self.number = 0
        self.file(self.kept_repo)  # opened, and its statements prepared, before any slice
        self.kept_backend = _backend(self.kept)
        self.postmaster = self.kept_backend.parent()  # it starts each new connection's backend

    def _pool(self) -> Database:
        return Database(self.dsn, "dossier", size=1, idle_timeout=3600.0, min_idle=1)

    def file(self, repo) -> None:
        self.number += 1
        file_one(repo, self.number, AGENCY)

    def on_kept(self) -> tuple[float, float, float]:
        server = process_cpu(self.kept_backend) + process_cpu(self.postmaster)
        wall, cpu = time.perf_counter(), time.process_time()
        self.file(self.kept_repo)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall, cpu, process_cpu(self.kept_backend) + process_cpu(self.postmaster) - server

    def on_new(self) -> tuple[float, float, float]:
        postmaster = process_cpu(self.postmaster)
        wall, cpu = time.perf_counter(), time.process_time()
        db = self._pool()
        try:
            self.file(on_postgres(db, EventStore(db)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return wall, cpu, process_cpu(_backend(db)) + process_cpu(self.postmaster) - postmaster
        finally:
            db.close()

    def on_ahead(self) -> tuple[float, float, float]:
        db = self._pool()
        try:
            if db.open_floor() != 1:
                raise RuntimeError("the pool opened no connection ahead")
            backend = _backend(db)
            server = process_cpu(backend)
            wall, cpu = time.perf_counter(), time.process_time()
            self.file(on_postgres(db, EventStore(db)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return wall, cpu, process_cpu(backend) - server
        finally:
            db.close()

    def close(self) -> None:
        self.kept.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pool", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer filings (20 per slice, 2 slices per way)")
    parser.add_argument("--filings", type=int, default=None, help="filings per slice")
    parser.add_argument("--slices", type=int, default=None, help="slices per way, alternating")
    args = parser.parse_args(argv)
    per_slice = args.filings if args.filings is not None else (20 if args.quick else 50)
    slices = args.slices if args.slices is not None else (2 if args.quick else 4)
    if not 1 <= per_slice <= 10_000 or not 1 <= slices <= 100:
        parser.error("--filings between 1 and 10000, --slices between 1 and 100")
    failures = Failures()
    figures: dict[str, list[tuple[float, float, float]]] = {"kept": [], "new": [], "ahead": []}
    with throwaway_database(f"portal_bench_pool_{uuid.uuid4().hex[:6]}", bench_server()) as dsn:
        migrate(dsn, "dossier", "services.dossier", create_database=False)
        ways = Ways(dsn)
        way_of = {"kept": ways.on_kept, "new": ways.on_new, "ahead": ways.on_ahead}
        try:
            for turn in range(slices):
                order = ("kept", "new", "ahead") if turn % 2 == 0 else ("ahead", "new", "kept")
                for name in order:
                    way = way_of[name]
                    for _ in range(per_slice):
                        try:
                            figures[name].append(way())
                        except Exception as exc:  # counted: a run with a failure prints no ratio
                            failures.add(f"{name}: {type(exc).__name__}")
        finally:
            ways.close()
    print(f"{slices} slices of {per_slice} filings per way, alternating; per filing:")
    print(f"{'connection':<34}{'p50 ms':>9}{'p90 ms':>9}{'Python CPU ms':>15}{'server CPU ms':>16}")
    summary: dict[str, tuple[float, float, float, float]] = {}
    for name, label in (("kept", "kept open (baseline)"), ("new", "opened for the filing"),
                        ("ahead", "opened ahead, first use")):
        rows = figures[name] or [(0.0, 0.0, 0.0)]
        walls = [r[0] * 1000 for r in rows]
        cpu = sum(r[1] for r in rows) / len(rows) * 1000
        server = sum(r[2] for r in rows) / len(rows) * 1000
        summary[name] = (nearest_rank(walls, 50), nearest_rank(walls, 90), cpu, server)
        print(f"{label:<34}{summary[name][0]:>9.2f}{summary[name][1]:>9.2f}{cpu:>15.3f}{server:>16.3f}")
    kept, new, ahead = summary["kept"], summary["new"], summary["ahead"]
    return finish("pool", f"filings={len(figures['new'])} new_p50_ms={new[0]:.2f} kept_p50_ms={kept[0]:.2f} "
                          f"new_cpu_ms={new[2] + new[3]:.3f} kept_cpu_ms={kept[2] + kept[3]:.3f} "
                          f"ahead_p50_ms={ahead[0]:.2f} ahead_cpu_ms={ahead[2] + ahead[3]:.3f} "
                          f"ratio={new[0] / max(kept[0], 1e-9):.2f} "
                          f"cpu_ratio={(new[2] + new[3]) / max(kept[2] + kept[3], 1e-9):.2f} "
                          f"ahead_ratio={ahead[0] / max(kept[0], 1e-9):.2f}", failures)


if __name__ == "__main__":
    raise SystemExit(main())
