"""Faults, and one run of the stream with faults injected into it.

A run starts a fresh system (its own database copied from the seeded template, its own
vhost, its own proxies) on the shared private cluster and broker, registers the citizens,
sends the stream in one burst per fault (each at full speed: a fault at full load is what
loses messages), injects each fault once a share of its burst has started, waits for the
clients, lets the system settle (bounded: until nothing is pending and nothing moved for a
few seconds; until nothing moved for ``quiet_s`` and no retry is scheduled any more; or the
deadline), then checks the invariants.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos import invariants
from tests.chaos.infra import Environment, Infrastructure
from tests.chaos.workload import Workload

CUT_S = 5.0  # a proxy cut lasts this long
SLOW_S = 10.0  # a proxy slow-down lasts this long
SLOW_MS = 150.0  # per chunk, each way


@dataclass(frozen=True)
class Fault:
    key: str  # as given on the command line
    name: str  # as shown in the table
    description: str
    inject: Callable[[Environment], None]


def _kill(service: str) -> Fault:
    return Fault(f"kill-{service}", f"kill -9 {service}", f"SIGKILL of the {service} process, then started again",
                 lambda env: env.restart_service(service))


def _cut(proxy: str) -> Callable[[Environment], None]:
    def inject(env: Environment) -> None:
        target = env.pg_proxy if proxy == "postgres" else env.mq_proxy
        target.cut()
        try:
            time.sleep(CUT_S)
        finally:
            target.restore()
    return inject


def _slow(proxy: str) -> Callable[[Environment], None]:
    def inject(env: Environment) -> None:
        target = env.pg_proxy if proxy == "postgres" else env.mq_proxy
        target.slow(SLOW_MS)
        try:
            time.sleep(SLOW_S)
        finally:
            target.restore()
    return inject


FAULTS: dict[str, Fault] = {f.key: f for f in (
    Fault("none", "none (control)", "no fault", lambda env: None),
    _kill("dossier"), _kill("router"), _kill("identity"), _kill("catalog"), _kill("gateway"),
    Fault("rabbitmq-restart", "rabbitmq restart", "the broker node stopped (SIGTERM) and started on its data",
          lambda env: env.infra.broker.restart()),
    Fault("postgresql-restart", "postgresql restart", "pg_ctl restart -m fast",
          lambda env: env.infra.pg.restart("fast")),
    Fault("postgresql-kill9", "postgresql kill -9", "SIGKILL of the postmaster, then started (crash recovery)",
          lambda env: env.infra.pg.kill9_and_start()),
    Fault("postgresql-cut", "postgresql proxy cut",
          f"the proxy closes every connection and refuses new ones for {CUT_S:g} s", _cut("postgres")),
    Fault("rabbitmq-cut", "rabbitmq proxy cut",
          f"the proxy closes every connection and refuses new ones for {CUT_S:g} s", _cut("rabbitmq")),
    Fault("postgresql-slow", "postgresql proxy slow", f"+{SLOW_MS:g} ms per chunk each way for {SLOW_S:g} s",
          _slow("postgres")),
    Fault("rabbitmq-slow", "rabbitmq proxy slow", f"+{SLOW_MS:g} ms per chunk each way for {SLOW_S:g} s",
          _slow("rabbitmq")),
)}


@dataclass
class Injected:
    fault: str
    at_s: float  # since the stream started
    took_s: float
    started: int  # filings started when it was injected
    acknowledged: int
    error: str | None = None
    ready_after_s: float | None = None
    client_errors: dict[str, int] = field(default_factory=dict)  # failed attempts until the next fault


@dataclass
class Outcome:
    label: str
    faults: list[Injected]
    workload: dict[str, Any]
    settle: dict[str, Any]
    report: invariants.Report | None
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and self.report.ok

    def text(self) -> str:
        lines = [f"== {self.label}: {'OK' if self.ok else 'VIOLATED' if self.report else 'ERROR'}",
                 f"   timing: {', '.join(f'{k} {v:.1f}s' for k, v in self.seconds.items())}",
                 f"   workload: {self.workload}"]
        for f in self.faults:
            lines.append(f"   fault {f.fault!r} at {f.at_s:.1f}s (filings started {f.started}, acknowledged "
                         f"{f.acknowledged}), took {f.took_s:.1f}s, ready again after "
                         f"{'-' if f.ready_after_s is None else f'{f.ready_after_s:.1f}s'}"
                         + f"; client failures until the next fault: {f.client_errors or 'none'}"
                         + (f", ERROR {f.error}" if f.error else ""))
        lines.append(f"   settle: {self.settle}")
        if self.error:
            lines.append(f"   error: {self.error}")
        if self.report:
            lines.append(self.report.text())
        return "\n".join(lines)


def settle(env: Environment, workload: Workload, timeout: float, quiet_s: float = 20.0,
           stable_s: float = 3.0, overdue_grace_s: float = 10.0) -> dict[str, Any]:
    """Poll until nothing is pending and nothing changed for ``stable_s`` ("settled"); until
    nothing changed for ``quiet_s`` although something is still missing and no retry is
    scheduled any more ("stuck": a retry overdue by more than ``overdue_grace_s`` counts as
    none); or until the deadline ("deadline")."""
    assert workload.recorder and workload.actor
    started = time.monotonic()
    deadline = started + timeout
    last: dict[str, Any] | None = None
    since = started
    state: dict[str, Any] = {}
    while True:
        now = time.monotonic()
        try:
            state = invariants.progress(env.direct_dsn)
            logged = {e.code for e in invariants.submitted_in_log(env.direct_dsn)}
        except Exception as exc:  # the database itself may still be coming back
            state = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            logged = set()
        delivered = {m.dossier_code for m in workload.recorder.snapshot() if m.event_type == "DossierSubmitted"}
        state.update({"undelivered": len(logged - delivered), "recorded": workload.recorder.count(),
                      "actor_idle": workload.actor.idle(), "actor_done": len(workload.actor.outcomes)})
        done = ("error" not in state and state["undelivered"] == 0 and state["actor_idle"]
                and state["router_pending"] == 0 and state["notices_pending"] == 0 and state["notice_waits"] == 0
                and all(state[f"outbox_{s}"] == 0 for s in invariants.LOG_SCHEMAS))
        scheduled = any(state.get(k) is not None and state[k] > -overdue_grace_s
                        for k in ("due_router_s", "due_notices_s"))
        moving = {k: v for k, v in state.items() if not k.startswith("due_")}
        if moving != last:
            last, since = moving, now
        if done and now - since >= stable_s:
            return {"result": "settled", "after_s": round(now - started, 1), **state}
        if not done and not scheduled and now - since >= quiet_s:
            return {"result": "stuck", "after_s": round(now - started, 1), **state}
        if now >= deadline:
            return {"result": "deadline", "after_s": round(now - started, 1), **state}
        time.sleep(1.0)


def split(filings: int, weights: list[int]) -> list[int]:
    """``filings`` cut into bursts proportional to ``weights`` (every filing in one)."""
    total = sum(weights)
    sizes = [filings * w // total for w in weights]
    sizes[-1] += filings - sum(sizes)
    return sizes


def run(infra: Infrastructure, faults: list[str], *, label: str, filings: int, clients: int, log_dir: Path,
        at: float = 0.4, weights: list[int] | None = None, rate: float | None = None,
        settle_timeout: float = 120.0, quiet_s: float = 20.0, agencies: int = 2) -> Outcome:
    """One system, one stream of ``filings`` in one burst per fault (sizes by ``weights``,
    equal by default); each burst goes out at full speed (or ``rate``), its fault is injected
    once ``at`` of the burst has started, and the next burst waits until every filing of this
    one is answered or given up."""
    seconds: dict[str, float] = {}
    injected: list[Injected] = []
    t = time.monotonic()
    env = Environment(infra, log_dir)
    try:
        env.start()
    except Exception as exc:
        return Outcome(label, [], {}, {}, None, seconds, f"system start: {exc}")
    seconds["system start"] = time.monotonic() - t
    workload: Workload | None = None
    try:
        t = time.monotonic()
        workload = Workload(env.gateway_url, env.direct_amqp, filings, clients, rate, agencies=agencies).prepare()
        seconds["accounts"] = time.monotonic() - t
        t = time.monotonic()
        workload.hold()
        workload.start()
        burst_limit = workload.max_filing_s + 60 + (filings / rate if rate else 0)
        first = 0
        for k, size in enumerate(split(filings, weights or [1] * max(1, len(faults)))):
            last = first + size
            workload.release(last)
            if k < len(faults):
                injected.append(_inject(env, workload, FAULTS[faults[k]], first + at * size, burst_limit))
            deadline = time.monotonic() + burst_limit
            while workload.finished(last) < last and time.monotonic() < deadline:
                time.sleep(0.05)
            first = last
        finished = workload.wait(60)
        seconds["stream"] = time.monotonic() - t
        bounds = [workload.t0 + f.at_s for f in injected] + [time.monotonic()]
        for entry, start, end in zip(injected, bounds, bounds[1:], strict=False):
            entry.client_errors = workload.failures_between(start, end)
        t = time.monotonic()
        settled = settle(env, workload, settle_timeout, quiet_s)
        settled["clients_finished"] = finished
        settled["dead_services"] = env.dead_services()
        seconds["settle"] = time.monotonic() - t
        workload.close()
        t = time.monotonic()
        phones = {c.account_id: c.phone for c in workload.citizens}
        report = invariants.check_all(env.direct_dsn, env.direct_amqp, workload.filings,
                                      workload.recorder.snapshot() if workload.recorder else [], phones)
        report.diagnostics["recorder"] = {"reconnects": workload.recorder.reconnects if workload.recorder else None,
                                          "malformed": workload.recorder.malformed if workload.recorder else None}
        report.diagnostics["agency_actor"] = _actor_summary(workload)
        report.diagnostics["proxies"] = {"postgres": env.pg_proxy.stats(), "rabbitmq": env.mq_proxy.stats()}
        seconds["checks"] = time.monotonic() - t
        return Outcome(label, injected, workload.summary(), settled, report, seconds)
    except Exception as exc:
        return Outcome(label, injected, workload.summary() if workload else {}, {}, None, seconds,
                       f"{type(exc).__name__}: {exc}\n{env.log_tails()}")
    finally:
        if workload is not None:
            workload.close()
        env.stop()


def _inject(env: Environment, workload: Workload, fault: Fault, when_started: float, limit_s: float) -> Injected:
    """Wait until ``when_started`` filings have started (bounded), inject, wait until ready."""
    deadline = time.monotonic() + limit_s
    while workload.started < when_started and time.monotonic() < deadline \
            and any(th.is_alive() for th in workload._threads):
        time.sleep(0.01)
    at = time.monotonic()
    entry = Injected(fault.name, at - workload.t0, 0.0, workload.started, workload.acknowledged())
    try:
        fault.inject(env)
    except Exception as exc:
        entry.error = f"{type(exc).__name__}: {exc}"[:500]
    entry.took_s = time.monotonic() - at
    with contextlib.suppress(Exception):
        env.wait_ready(timeout=90)
        entry.ready_after_s = time.monotonic() - at
    return entry


def _actor_summary(workload: Workload) -> dict[str, Any]:
    from collections import Counter

    if workload.actor is None:
        return {}
    outcomes = Counter(v.split(":")[0] if v.startswith("refused") else v for v in workload.actor.outcomes.values())
    return {"attempts": workload.actor.attempts, **dict(outcomes)}


# -- the table ------------------------------------------------------------------------------------

HEADER = ("| fault | filed | lost / doubled | code gaps | reached the agency's queue (exactly once by delivery id) "
          "| notices / projections | verdict |")


def table_row(outcome: Outcome) -> str:
    if outcome.report is None:
        return f"| {outcome.label} | - | - | - | - | - | ERROR: {(outcome.error or '')[:80]} |"
    c = outcome.report.checks
    a, b, d, n, p = (c["filings"].counts, c["codes"].counts, c["delivery"].counts, c["notices"].counts,
                     c["projections"].counts)
    filed = f"{a['acknowledged']}/{a['filed']} acknowledged ({a['in_log']} in the log)"
    lost = f"{a['lost']} / {a['doubled']}" + (f" (+{a['wrong_code']} wrong code)" if a["wrong_code"] else "")
    gaps = str(b["gaps"])
    reached = (f"{d['delivered'] - d['doubled'] - d['wrong_id']}/{d['in_log']} exactly once; "
               f"missing {d['missing']}, distinct ids >1: {d['doubled']}, copies of one id: {d['duplicate_copies']}")
    diff = sum((p.get("differing_rows") or {}).values())
    rebuilt = "equal" if diff == 0 else f"{diff} rows differ"
    notes = f"SMS missing {n['missing']} doubled {n['doubled']} / projections {rebuilt}"
    verdict = "ok" if outcome.ok else "VIOLATED: " + ", ".join(k for k, v in c.items() if not v.ok)
    return f"| {outcome.label} | {filed} | {lost} | {gaps} | {reached} | {notes} | {verdict} |"
