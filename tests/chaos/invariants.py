"""What must hold once a faulty stream has settled, checked against the private database
(read only: a snapshot of the dossier log and projections is copied into a scratch schema
for the rebuild) and against what the agencies' queues delivered (``workload.Recorder``).

(a) filings   every acknowledged filing exists exactly once: one DossierSubmitted per
              (owner, Idempotency-Key), with the code the client was answered; no key has two
              dossiers, acknowledged or not; no dossier without one of our keys.
(b) codes     each agency's daily sequence ``<agency>-<YYMMDD>-<NNNN>`` is 1..max with no
              hole, and the counter row has drawn no number beyond the last dossier.
(c) delivery  every dossier in the log reached its agency's queue exactly once by delivery
              id: one distinct delivery id for its DossierSubmitted (the router's
              deterministic id for that event and agency; message id = body's id), received
              at least once (copies of the same id are allowed and counted: the back office
              drops them); nothing delivered for a dossier that is not in the log.
(d) notices   every applicant notice was sent once: one SMS in the local stand-in's outbox
              per notifying event in the log (DossierSubmitted, DossierReceived, ...), to the
              owner's phone, with the event's text; none for an event not in the log.
(e) projections every projection equals its rebuild from the log (the dossier service's own
              ``rebuild`` run on a consistent copy of the log; compared row for row, both ways).

Each check returns a ``Check`` with counts and the first problems found; ``Report`` holds
them all plus diagnostics (router delivery states, parked messages, outbox backlogs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pika
import psycopg2
import psycopg2.extras

from portal_common.db import Database
from tests.chaos.workload import Filing, Received


def _first(*candidates: tuple[str, str]) -> Any:
    """The first ``(module, attribute)`` that imports. The suite needs a few of the services'
    own rules (the router's delivery id, the notice texts, the projections and their rebuild)
    and the services are being reshaped: look where they live now and where they lived."""
    for module, attribute in candidates:
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"the chaos suite cannot find any of {candidates}")


def router_delivery_id(event_id: str, agency_code: str) -> uuid.UUID:
    """The router's deterministic id of one dossier event's delivery to one agency."""
    return _first(("services.router.domain.routing", "delivery_id"),
                  ("services.router.domain", "delivery_id"))(event_id, agency_code)


def notice_texts() -> tuple[frozenset[str], Any]:
    """(notifying event types, ``sms_text(event_type, data)``) of identity's applicant notices."""
    return (_first(("services.identity.domain.notifications", "NOTIFYING")),
            _first(("services.identity.domain.notifications", "sms_text")))


def dossier_projections() -> tuple[dict[str, Any], Any]:
    """(the dossier service's projections by name, its ``rebuild(db)``)."""
    places = ("services.dossier.queries", "services.dossier.projections")
    return (_first(*((m, "PROJECTIONS") for m in places)), _first(*((m, "rebuild") for m in places)))


CODE_RE = re.compile(r"^(?P<agency>[A-Za-z0-9._-]{1,60})-(?P<day>\d{6})-(?P<seq>\d{4,})$")


def parse_code(code: str) -> tuple[str, dt.date, int] | None:
    """``<agency>-<YYMMDD>-<NNNN>`` -> (agency, day, sequence); None for anything else."""
    match = CODE_RE.fullmatch(code) if isinstance(code, str) else None
    if not match:
        return None
    try:
        return match["agency"], dt.datetime.strptime(match["day"], "%y%m%d").date(), int(match["seq"])
    except ValueError:
        return None


LOG_SCHEMAS = ("identity", "catalog", "dossier", "router")
PARKED_QUEUES = tuple(f"{s}.parked" for s in LOG_SCHEMAS)
SAMPLE = 8  # problems listed per check


@dataclass
class Check:
    name: str
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    violations: int = 0

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def fail(self, n: int, text: str) -> None:
        self.violations += n
        if len(self.problems) < SAMPLE:
            self.problems.append(text)

    def text(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        lines = [f"[{'ok' if self.ok else 'VIOLATED'}] {self.name}: {counts}"]
        lines += [f"    - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class Report:
    checks: dict[str, Check]
    diagnostics: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def text(self) -> str:
        out = [c.text() for c in self.checks.values()]
        out += [f"    {k}: {v}" for k, v in self.diagnostics.items()]
        return "\n".join(out)


# -- reading the log ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Logged:
    code: str
    event_id: str
    agency: str
    key: str | None
    owner: str | None


def _connect(dsn: str):
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="chaos-invariants")
    conn.set_session(readonly=True, autocommit=True)
    return conn


def submitted_in_log(dsn: str) -> list[Logged]:
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT payload->>'code', event_id::text, payload->'agency'->>'code', "
                        "payload->>'idempotency_key', payload->'owner'->>'account_id' "
                        "FROM dossier.events WHERE event_type = 'DossierSubmitted' ORDER BY position")
            return [Logged(*row) for row in cur.fetchall()]
    finally:
        conn.close()


# -- (a) filings -------------------------------------------------------------------------------

def check_filings(filings: list[Filing], logged: list[Logged]) -> Check:
    check = Check("(a) filings exist exactly once")
    by_key: dict[tuple[str | None, str], list[Logged]] = defaultdict(list)
    for entry in logged:
        if entry.key:
            by_key[(entry.owner, entry.key)].append(entry)
    ours = {(f.owner, f.key) for f in filings if f.owner}
    acknowledged = [f for f in filings if f.outcome == "acknowledged"]
    lost = doubled = wrong_code = unanswered_committed = 0
    for f in filings:
        found = by_key.get((f.owner, f.key), [])
        if len(found) > 1:
            doubled += 1
            check.fail(1, f"key {f.key} has {len(found)} dossiers: {[e.code for e in found]}")
        if f.outcome == "acknowledged":
            if not found:
                lost += 1
                check.fail(1, f"acknowledged {f.code} (key {f.key}) is not in the log")
            elif len(found) == 1 and found[0].code != f.code:
                wrong_code += 1
                check.fail(1, f"key {f.key} was answered {f.code} but the log filed {found[0].code}")
        elif found:
            unanswered_committed += 1  # filed, but the client never heard: allowed, reported
    stray = [e for e in logged if (e.owner, e.key) not in ours]
    for e in stray:
        check.fail(1, f"{e.code} is in the log without one of the workload's keys ({e.key!r})")
    codes = Counter(e.code for e in logged)
    for code, n in codes.items():
        if n > 1:
            check.fail(1, f"code {code} was issued {n} times")
    check.counts = {"filed": len(filings), "acknowledged": len(acknowledged), "in_log": len(logged),
                    "lost": lost, "doubled": doubled, "wrong_code": wrong_code, "stray": len(stray),
                    "committed_unanswered": unanswered_committed,
                    "refused": sum(1 for f in filings if f.outcome == "refused"),
                    "gave_up": sum(1 for f in filings if f.outcome == "gave_up")}
    return check


# -- (b) code sequences -------------------------------------------------------------------------

def check_codes(dsn: str, logged: list[Logged]) -> Check:
    check = Check("(b) daily code sequences have no gap")
    seqs: dict[tuple[str, str], set[int]] = defaultdict(set)
    for e in logged:
        parsed = parse_code(e.code)
        if parsed is None:
            check.fail(1, f"malformed code {e.code!r}")
            continue
        agency, day, seq = parsed
        seqs[(agency, day.strftime("%y%m%d"))].add(seq)
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT agency_code, to_char(day, 'YYMMDD'), last_value FROM dossier.code_counters")
            counters = {(a, d): v for a, d, v in cur.fetchall()}
    finally:
        conn.close()
    gaps = 0
    for sequence in sorted(set(seqs) | set(counters)):
        have = seqs.get(sequence, set())
        top = max(max(have, default=0), counters.get(sequence, 0))
        missing = sorted(set(range(1, top + 1)) - have)
        if missing:
            gaps += len(missing)
            shown = ", ".join(f"{n:04d}" for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
            check.fail(len(missing), f"{sequence[0]}-{sequence[1]}: no dossier for {shown} "
                       f"(counter at {counters.get(sequence)}, {len(have)} dossiers)")
    check.counts = {"sequences": len(seqs), "codes": sum(len(v) for v in seqs.values()), "gaps": gaps}
    return check


# -- (c) deliveries -----------------------------------------------------------------------------

def check_deliveries(logged: list[Logged], received: list[Received]) -> Check:
    check = Check("(c) each dossier reached its agency once by delivery id")
    submitted = [r for r in received if r.event_type == "DossierSubmitted"]
    by_code: dict[str, list[Received]] = defaultdict(list)
    for r in submitted:
        by_code[r.dossier_code or ""].append(r)
    in_log = {e.code for e in logged}
    missing: list[str] = []
    doubled = copies = wrong_id = wrong_queue = 0
    for e in logged:
        got = by_code.get(e.code, [])
        if not got:
            missing.append(e.code)
            continue
        ids = {r.delivery_id for r in got}
        copies += len(got) - 1
        if len(ids) > 1:
            doubled += 1
            check.fail(1, f"{e.code} came with {len(ids)} distinct delivery ids: {sorted(map(str, ids))}")
        expected = str(router_delivery_id(e.event_id, e.agency))
        for r in got:
            if r.delivery_id != expected or r.queue_message_id != r.delivery_id or \
                    (r.header_delivery_id is not None and r.header_delivery_id != r.delivery_id):
                wrong_id += 1
                check.fail(1, f"{e.code}: delivery id {r.delivery_id} / message id {r.queue_message_id} / "
                           f"header {r.header_delivery_id}, expected {expected}")
                break
        if any(r.agency != e.agency for r in got):
            wrong_queue += 1
            check.fail(1, f"{e.code} (for {e.agency}) reached {sorted({r.agency for r in got})}")
    if missing:
        check.fail(len(missing), f"{len(missing)} dossiers never reached their agency's queue: "
                   f"{', '.join(sorted(missing)[:12])}{' ...' if len(missing) > 12 else ''}")
    phantom = sorted(set(by_code) - in_log)
    if phantom:
        check.fail(len(phantom), f"deliveries for dossiers not in the log: {phantom[:10]}")
    check.counts = {"in_log": len(logged), "delivered": len(logged) - len(missing), "missing": len(missing),
                    "doubled": doubled, "duplicate_copies": copies, "wrong_id": wrong_id,
                    "wrong_queue": wrong_queue, "phantom": len(phantom),
                    "messages": len(received), "follow_up_messages": len(received) - len(submitted)}
    check.missing = missing  # type: ignore[attr-defined]
    return check


def router_diagnosis(dsn: str, logged: list[Logged], codes: list[str]) -> dict[str, Any]:
    """Why dossiers are missing: what the router holds for them (no row = the event never
    became a delivery; pending/dead = it did but was not sent)."""
    if not codes:
        return {}
    events = [e.event_id for e in logged if e.code in set(codes)]
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM router.deliveries WHERE dossier_code = ANY(%s) "
                        "AND event_type = 'DossierSubmitted' GROUP BY status", (codes,))
            states = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM router.processed_events WHERE consumer = 'router.dossier' "
                        "AND event_id = ANY(%s::uuid[])", (events,))
            claimed = cur.fetchone()[0]
            cur.execute("SELECT last_error FROM router.deliveries WHERE dossier_code = ANY(%s) "
                        "AND last_error IS NOT NULL LIMIT 3", (codes,))
            errors = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    with_row = sum(states.values())
    return {"missing_with_a_router_delivery": dict(states),
            "missing_without_any_router_delivery": len(codes) - with_row,
            "missing_marked_processed_by_router": claimed, "router_last_errors": errors}


# -- (d) notices --------------------------------------------------------------------------------

def check_notices(dsn: str, phones: dict[str, str]) -> Check:
    """``phones``: account id -> phone of the workload's citizens."""
    check = Check("(d) each applicant notice was sent once")
    notifying, sms_text = notice_texts()
    conn = _connect(dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.DictCursor) as cur:
            cur.execute("SELECT stream_id, event_id::text, event_type, payload FROM dossier.events "
                        "WHERE event_type = ANY(%s) ORDER BY position", (sorted(notifying),))
            events = cur.fetchall()
            cur.execute("SELECT stream_id, payload->'owner'->>'account_id' FROM dossier.events "
                        "WHERE event_type = 'DossierSubmitted'")
            owner_of = dict(cur.fetchall())
            cur.execute("SELECT phone, body FROM identity.local_sms_outbox WHERE body LIKE 'Ho so %%'")
            sms = cur.fetchall()
            cur.execute("SELECT status, count(*) FROM identity.applicant_notices GROUP BY status")
            notice_states = dict(cur.fetchall())
    finally:
        conn.close()
    sent = Counter((phone, body) for phone, body in sms)
    expected: Counter = Counter()
    missing = doubled = 0
    by_kind: Counter = Counter()
    for stream_id, event_id, event_type, payload in events:
        phone = phones.get(owner_of.get(stream_id) or "")
        text = sms_text(event_type, payload)
        if phone is None or text is None:
            continue
        expected[(phone, text)] += 1
        by_kind[event_type] += 1
        n = sent.get((phone, text), 0)
        if n == 0:
            missing += 1
            check.fail(1, f"no SMS for {event_type} of {payload.get('code')} (event {event_id})")
        elif n > 1:
            doubled += 1
            check.fail(1, f"{n} SMS for {event_type} of {payload.get('code')}")
    unexplained = [body for (phone, body), n in sent.items() if (phone, body) not in expected]
    for body in unexplained[:3]:
        check.fail(0, f"an SMS no logged event explains: {body[:80]!r}")
    check.violations += len(unexplained)
    check.counts = {"expected": sum(expected.values()), **{f"expected_{k}": v for k, v in sorted(by_kind.items())},
                    "sms": len(sms), "missing": missing, "doubled": doubled, "unexplained": len(unexplained),
                    "notice_rows": notice_states}
    return check


# -- (e) projections ----------------------------------------------------------------------------

def check_projections(dsn: str) -> Check:
    """Copy the log and the live projections in one snapshot into a scratch schema, rebuild
    the projections there from the copied log, and compare the two copies row for row."""
    check = Check("(e) projections equal their rebuild from the log")
    projections, rebuild = dossier_projections()
    scratch = f"chaos_rebuild_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="chaos-invariants")
    try:
        conn.set_session(isolation_level="REPEATABLE READ")
        with conn, conn.cursor() as cur:  # one snapshot for the log and every projection
            cur.execute(f"CREATE SCHEMA {scratch}")
            cur.execute(f"CREATE TABLE {scratch}.events AS SELECT * FROM dossier.events")
            for p in projections.values():
                cur.execute(f"CREATE TABLE {scratch}.live_{p.table} AS SELECT * FROM dossier.{p.table}")
                cur.execute(f"CREATE TABLE {scratch}.{p.table} (LIKE dossier.{p.table} INCLUDING DEFAULTS)")
        db = Database(dsn, scratch, size=1, application_name="chaos-rebuild")
        try:
            stats = rebuild(db)
        finally:
            db.close()
        conn.set_session(isolation_level="READ COMMITTED", readonly=True, autocommit=True)
        diffs: dict[str, int] = {}
        with conn.cursor() as cur:
            for p in projections.values():
                cols = ", ".join(p.columns)
                live, rebuilt = f"{scratch}.live_{p.table}", f"{scratch}.{p.table}"
                cur.execute(f"SELECT 'live only', {cols} FROM (SELECT {cols} FROM {live} EXCEPT ALL "
                            f"SELECT {cols} FROM {rebuilt}) a UNION ALL SELECT 'rebuilt only', {cols} FROM "
                            f"(SELECT {cols} FROM {rebuilt} EXCEPT ALL SELECT {cols} FROM {live}) b")
                rows = cur.fetchall()
                cur.execute(f"SELECT count(*) FROM {live}")
                diffs[p.table] = len(rows)
                for row in rows[:2]:
                    check.fail(0, f"{p.table}: {row[0]}: {row[1:]}")
                check.violations += len(rows)
        check.counts = {"rebuilt_dossiers": stats.get("dossiers"), "events": stats.get("events"),
                        "differing_rows": diffs}
    finally:
        with contextlib.suppress(Exception):
            conn.set_session(readonly=False, autocommit=True)
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
        conn.close()
    return check


# -- progress and diagnostics -------------------------------------------------------------------

def progress(dsn: str) -> dict[str, Any]:
    """What is still moving: outbox backlogs, router deliveries not sent yet (and their
    attempts), applicant notices pending, events waiting for their owner."""
    conn = _connect(dsn)
    out: dict[str, Any] = {}
    try:
        with conn.cursor() as cur:
            for schema in LOG_SCHEMAS:
                cur.execute(f"SELECT coalesce((SELECT max(position) FROM {schema}.events), 0) - "
                            f"coalesce((SELECT max(position) FROM {schema}.outbox_checkpoints), 0)")
                out[f"outbox_{schema}"] = max(0, cur.fetchone()[0])
            cur.execute("SELECT count(*) FROM dossier.events")
            out["dossier_events"] = cur.fetchone()[0]
            cur.execute("SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead'), "
                        "coalesce(sum(attempts), 0), count(*) FROM router.deliveries")
            out["router_pending"], out["router_dead"], out["router_attempts"], out["router_rows"] = cur.fetchone()
            cur.execute("SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM identity.applicant_notices")
            out["notices_pending"], out["notices"] = cur.fetchone()
            # when the latest scheduled retry is due (seconds from now; negative: overdue): a
            # delivery or notice leased by a process that was killed waits out its lease
            # (DELIVERY_LEASE; identity's 60 s send lease) before the timer takes it again
            cur.execute("SELECT extract(epoch FROM max(greatest(next_attempt_at, coalesce(lease_until, "
                        "next_attempt_at))) - now()) FROM router.deliveries WHERE status = 'pending'")
            out["due_router_s"] = _seconds(cur.fetchone()[0])
            cur.execute("SELECT extract(epoch FROM max(next_attempt_at) - now()) FROM identity.applicant_notices "
                        "WHERE status = 'pending'")
            out["due_notices_s"] = _seconds(cur.fetchone()[0])
            cur.execute("SELECT count(*) FROM identity.notification_waits")
            out["notice_waits"] = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM identity.local_sms_outbox")
            out["sms"] = cur.fetchone()[0]
    finally:
        conn.close()
    return out


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def parked_counts(amqp_uri: str) -> dict[str, int]:
    """Messages in each service's parking queue (absent queue: 0)."""
    out: dict[str, int] = {}
    with contextlib.suppress(Exception):
        connection = pika.BlockingConnection(pika.URLParameters(amqp_uri + "?connection_attempts=2&socket_timeout=5"))
        try:
            for name in PARKED_QUEUES:
                channel = connection.channel()
                try:
                    out[name] = channel.queue_declare(name, passive=True).method.message_count
                except pika.exceptions.ChannelClosedByBroker:
                    out[name] = 0
                with contextlib.suppress(Exception):
                    if channel.is_open:
                        channel.close()
        finally:
            with contextlib.suppress(Exception):
                connection.close()
    return out


def check_all(dsn: str, amqp_uri: str, filings: list[Filing], received: list[Received],
              phones: dict[str, str]) -> Report:
    logged = submitted_in_log(dsn)
    checks = {
        "filings": check_filings(filings, logged),
        "codes": check_codes(dsn, logged),
        "delivery": check_deliveries(logged, received),
        "notices": check_notices(dsn, phones),
        "projections": check_projections(dsn),
    }
    diagnostics: dict[str, Any] = {"parked": parked_counts(amqp_uri), "progress": progress(dsn)}
    missing = getattr(checks["delivery"], "missing", [])
    if missing:
        diagnostics["router"] = router_diagnosis(dsn, logged, missing)
    return Report(checks, diagnostics)
