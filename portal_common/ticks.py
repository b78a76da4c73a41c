"""Timers that act once per tick however many processes run the service.

nameko's ``@timer`` fires in every process of a service: with two dossier processes the
overdue job would run twice a minute, with ten, ten times. ``timer(interval)`` here wraps
nameko's: on each firing the process first claims the current tick of that timer in the
service's ``timer_ticks`` table (``INSERT ... ON CONFLICT DO NOTHING``; the primary key is
``(timer, tick)``) and runs the method only when its insert won. A tick is the database
clock's epoch seconds divided by the interval, so every process of every machine counts the
same ticks whatever its own clock or start time says. Each process still fires once per
interval, so a tick whose window saw at least one firing is acted on by exactly one process,
and a process that dies leaves the next tick to the others.

The claim is made by the entrypoint before a worker is spawned (calling the method directly,
as a unit test does, always runs it). The claim commits before the work starts: a tick whose
work fails is not run again by another process; the next tick is (every timer here redoes
whatever is due, so nothing is lost, only Old claims are pruned as new ones are made.

A process is busy until its worker ends (nameko's timer waits for it), so when a tick's work
outlasts the interval the next ticks go to the other processes: work that is safe to run
concurrently (the router's leased delivery retries) still spreads over them under a backlog,
while an idle system acts once per tick.

``TICKS`` counts, per timer, the ticks this process acted on and skipped; the ``health`` RPC
reports them (with the process's instance id), so tests and operators see the spreading.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from nameko.timer import Timer
from prometheus_client import Counter as PromCounter

from portal_common.config import instance_id
from portal_common.db import Database, make_green
from portal_common.nameko_ext import _dsn

log = logging.getLogger(__name__)

#: claims older than this many ticks of the same timer are deleted
KEEP_TICKS = 1000
#: how often (in ticks) a claim also prunes
PRUNE_EVERY = 100

DDL = """
CREATE TABLE IF NOT EXISTS {schema}.timer_ticks (
    timer       text        NOT NULL,
    tick        bigint      NOT NULL,
    claimed_by  text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (timer, tick)
);
"""

CLAIM_SQL = (
    "INSERT INTO timer_ticks (timer, tick, claimed_by) "
    "VALUES (%s, floor(extract(epoch FROM clock_timestamp()) / %s)::bigint, %s) "
    "ON CONFLICT DO NOTHING RETURNING tick"
)


def ddl(schema: str) -> str:
    """The ``timer_ticks`` table of one service's schema (idempotent)."""
    return DDL.format(schema=schema)


class TickCounts:
    """Per timer, how many ticks this process acted on and how many another process had."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, timer: str, outcome: str) -> None:
        with self._lock:
            self._counts[(timer, outcome)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            result: dict[str, dict[str, int]] = {}
            for (timer, outcome), n in self._counts.items():
                result.setdefault(timer, {"acted": 0, "skipped": 0})[outcome] = n
            return result


TICKS = TickCounts()
TICK_TOTAL = PromCounter("portal_timer_ticks_total", "Timer firings of this process: acted (it claimed the tick), "
                         "skipped (another process had it) or error (no database to claim in)",
                         ["service", "timer", "outcome"])


def claim_tick(db: Any, timer_name: str, interval: float, claimant: str | None = None) -> int | None:
    """Claim the current tick of ``timer_name`` for this process: the tick number when this
    call won it, None when another process already had it."""
    with db.transaction(dict_rows=False) as cur:
        cur.execute(CLAIM_SQL, (timer_name, float(interval), claimant or instance_id()))
        row = cur.fetchone()
        if row is None:
            return None
        tick = int(row[0])
        if tick % PRUNE_EVERY == 0:
            cur.execute("DELETE FROM timer_ticks WHERE timer = %s AND tick < %s", (timer_name, tick - KEEP_TICKS))
        return tick


class TickTimer(Timer):
    """nameko's timer entrypoint that spawns its worker only for a tick it claimed.

    The claim happens here, before a worker exists, so the method stays a plain method
    (a unit test calling it acts every time) and a skipped tick costs one insert.
    """

    def __init__(self, interval: float, name: str | None = None, eager: bool = False, **kwargs: Any) -> None:
        if interval <= 0:
            raise ValueError("a timer's interval must be positive")
        super().__init__(interval, eager=eager, **kwargs)
        self.timer_name = name
        self.db: Any = None

    def setup(self) -> None:
        make_green()
        service = self.container.service_name
        self.timer_name = self.timer_name or self.method_name
        self.db = Database(_dsn(self.container, service), service, size=1,
                           application_name=f"{service}-ticks")

    def stop(self) -> None:
        super().stop()
        if self.db is not None:
            self.db.close()

    def handle_timer_tick(self) -> None:
        outcome = "error"
        try:
            tick = claim_tick(self.db, self.timer_name, self.interval)
            outcome = "skipped" if tick is None else "acted"
        except Exception as exc:  # the database is away: nobody can claim; try next tick
            log.warning("timer %s: could not claim a tick (%s); skipping it", self.timer_name, exc)
            tick = None
        TICKS.add(self.timer_name, outcome)
        TICK_TOTAL.labels(self.container.service_name, self.timer_name, outcome).inc()
        if tick is None:
            self.worker_complete.send()  # _run waits for the worker this tick does not have
            return
        super().handle_timer_tick()


def timer(interval: float, name: str | None = None, eager: bool = False) -> Callable:
    """``@timer(interval=...)`` for a service method: nameko's timer, acting once per tick
    across all the service's processes (``name`` defaults to the method's)."""
    return TickTimer.decorator(interval=interval, name=name, eager=eager)
