"""Every service and the gateway as two processes on one broker and one database.

What must hold when a service runs as N processes: RPCs reach all of them, the outbox relay
of each log has one leader and another takes over when it dies, each timer tick is acted on
by one process, a catalog change reaches the catalog cache of every dossier process, and
concurrent filings through both dossier processes get unique codes without gaps.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from deploy.launcher import SERVICE_CLASSES, parse_instance_key
from services.dossier.domain.codes import parse_code
from tests.e2e.conftest import PROCEDURE, commune_agencies, filing
from tests.scale.conftest import TICK_S
from tests.support import accounts
from tests.support.http import http
from tests.support.processes import wait_for

#: every launched service (the gateway aside): each must run, and answer, as two processes
SERVICES = tuple(name for name in SERVICE_CLASSES if name != "gateway")
#: the services with an event log, hence an outbox relay
LOGGED = ("identity", "catalog", "dossier", "router")


def our_pids(system, service: str) -> dict[int, str]:
    """pid -> launcher key of the running processes of ``service``."""
    return {proc.pid: key for key, proc in system.processes.items()
            if parse_instance_key(key)[0] == service and proc.poll() is None}


def healths(cluster, service: str, wanted: int, tries: int = 60) -> dict[int, dict]:
    """The health answers of ``service`` by pid, asking until ``wanted`` processes answered."""
    seen: dict[int, dict] = {}
    for _ in range(tries):
        answer = getattr(cluster, service).health()
        seen[answer["pid"]] = answer
        if len(seen) >= wanted:
            break
    return seen


def test_every_service_and_the_gateway_run_two_processes(scaled):
    for name in (*SERVICES, "gateway"):
        assert len(our_pids(scaled, name)) == 2, name


def test_rpcs_spread_over_both_processes_of_every_service(scaled, cluster):
    for service in SERVICES:
        answers = healths(cluster, service, 2)
        assert set(answers) == set(our_pids(scaled, service)), (service, answers)
        assert {a["instance"] for a in answers.values()} == {f"{service}-1", f"{service}-2"}
        assert all(a["status"] == "ok" for a in answers.values())


def test_gateway_connections_spread_over_both_processes_on_one_port(scaled):
    instances = set()
    for _ in range(60):
        with urllib.request.urlopen(f"{scaled.gateway_url}/health", timeout=10) as resp:
            instances.add(json.loads(resp.read())["instance"])
        if len(instances) == 2:
            break
    assert instances == {"gateway-1", "gateway-2"}


def test_each_outbox_relay_has_exactly_one_leader(cluster):
    for service in LOGGED:
        answers = wait_for(lambda s=service: _one_leader(cluster, s), timeout=15, what=f"one {service} relay leader")
        assert sum(a["outbox_leader"] for a in answers.values()) == 1, (service, answers)


def _one_leader(cluster, service: str) -> dict[int, dict] | None:
    answers = healths(cluster, service, 2)
    return answers if len(answers) == 2 and sum(a["outbox_leader"] for a in answers.values()) == 1 else None


def _tick_rows(db, schema: str, timer: str) -> tuple[int, int, int]:
    with db.transaction(dict_rows=False) as cur:
        cur.execute(f"SELECT count(*), coalesce(min(tick), 0), coalesce(max(tick), 0) FROM {schema}.timer_ticks "
                    "WHERE timer = %s", (timer,))
        return cur.fetchone()


@pytest.mark.parametrize(("service", "timer"), [("dossier", "mark_overdue"), ("router", "retry_due"),
                                                ("identity", "send_due_notices")])
def test_every_timer_tick_is_acted_on_by_one_process(scaled, cluster, scale_db, service, timer):
    time.sleep(4 * TICK_S)  # a few ticks, whatever ran before
    before, _, _ = _tick_rows(scale_db, service, timer)
    answers = healths(cluster, service, 2)
    after, first, last = _tick_rows(scale_db, service, timer)
    assert len(answers) == 2
    counts = [a["ticks"].get(timer, {"acted": 0, "skipped": 0}) for a in answers.values()]
    acted = sum(c["acted"] for c in counts)
    # every tick acted on has its one claim row, and no tick was acted on by both processes
    assert before <= acted <= after, (before, acted, after, counts)
    # both processes fire every tick: one acts, the other finds the tick taken
    assert all(c["acted"] + c["skipped"] >= 2 for c in counts), counts
    assert sum(c["skipped"] for c in counts) >= 2, counts
    # and hardly a tick went by without anyone acting on it (a loaded machine delays a firing)
    assert after >= 0.8 * (last - first + 1), (after, first, last)


def test_a_catalog_change_reaches_the_cache_of_every_dossier_process(scaled, cluster):
    before = healths(cluster, "dossier", 2)
    assert len(before) == 2 and all(a["catalog_cache"]["enabled"] for a in before.values()), before
    generations = {pid: a["catalog_cache"]["generation"] for pid, a in before.items()}
    editor = {"request_id": uuid.uuid4().hex, "client_ip": "127.0.0.1",
              "actor": {"kind": "editor", "id": "editor-scale", "agency_code": None, "subject": None}}
    current = cluster.catalog.get_procedure(PROCEDURE)
    cluster.catalog.amend_procedure(PROCEDURE, {"processing_days": int(current["processing_days"]) + 1},
                                    context=editor)

    def invalidated() -> dict[int, dict] | None:
        answers = healths(cluster, "dossier", 2)
        done = len(answers) == 2 and all(
            a["catalog_cache"]["generation"] > generations[pid] for pid, a in answers.items())
        return answers if done else None

    wait_for(invalidated, timeout=15, interval=0.3, what="the amendment in both dossier processes' caches")


def _metric(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_concurrent_filings_through_both_dossier_processes_get_unique_gap_free_codes(scaled, cluster, scale_db):
    dossiers = healths(cluster, "dossier", 2)
    ports = {pid: a["metrics_port"] for pid, a in dossiers.items()}
    assert len(ports) == 2 and all(ports.values()), dossiers

    def submits(port: int) -> float:
        return _metric(f"http://127.0.0.1:{port}/metrics", "portal_rpc_calls_total", service="dossier",
                       method="submit", outcome="ok")

    submitted_before = {pid: submits(port) for pid, port in ports.items()}
    citizen = accounts.register_citizen(scaled.gateway_url)
    agency = commune_agencies(scaled.gateway_url, 1)[0]
    status, procedure, _ = http(f"{scaled.gateway_url}/api/v1/procedures/{PROCEDURE}")
    assert status == 200, procedure
    body = filing(procedure, agency)

    def file_one(_: int) -> dict[str, Any]:
        status, created, _ = http(f"{scaled.gateway_url}/api/v1/dossiers", "POST", body, citizen["access_token"],
                                  headers={"Idempotency-Key": uuid.uuid4().hex})
        assert status == 201, created
        return created

    count = 40
    with ThreadPoolExecutor(8) as pool:
        codes = [created["code"] for created in pool.map(file_one, range(count))]
    assert len(set(codes)) == count, sorted(codes)

    # every code the agency got today, whoever filed it: 1 ... n, none twice, none missing
    parsed = [parse_code(code) for code in codes]
    day = parsed[0][1]
    assert {(a, d) for a, d, _ in parsed} == {(agency["code"], day)}
    with scale_db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT code FROM dossier.dossier_status WHERE agency_code = %s", (agency["code"],))
        all_codes = [r[0] for r in cur.fetchall()]
    sequences = sorted(seq for a, d, seq in map(parse_code, all_codes) if d == day)
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert set(codes) <= set(all_codes)

    # and both dossier processes took part
    took = {pid: submits(port) - submitted_before[pid] for pid, port in ports.items()}
    assert sum(took.values()) == count, took
    assert all(n > 0 for n in took.values()), took


def _leader_of(cluster, service: str) -> dict[str, Any]:
    answers = wait_for(lambda: _one_leader(cluster, service), timeout=15, what=f"one {service} relay leader")
    return next(a for a in answers.values() if a["outbox_leader"])


def _published_up_to_head(db) -> bool:
    with db.transaction(dict_rows=False) as cur:
        cur.execute("SELECT (SELECT coalesce(max(position), 0) FROM dossier.events) <= "
                    "(SELECT position FROM dossier.outbox_checkpoints WHERE relay = 'amqp')")
        return bool(cur.fetchone()[0])


def test_the_relay_leader_is_taken_over_when_its_process_is_killed(scaled, cluster, scale_db):
    """Last here: it leaves one dossier process."""
    leader = _leader_of(cluster, "dossier")
    key = our_pids(scaled, "dossier")[leader["pid"]]
    scaled.stop_one(key, signal.SIGKILL)
    survivor = wait_for(lambda: _survivor_leads(cluster, leader["pid"]), timeout=20, interval=0.3,
                        what="the other dossier process to take the relay over")
    assert survivor["pid"] in our_pids(scaled, "dossier")

    # and it publishes: a new filing's events leave the log
    citizen = accounts.register_citizen(scaled.gateway_url)
    agency = commune_agencies(scaled.gateway_url, 1)[0]
    _, procedure, _ = http(f"{scaled.gateway_url}/api/v1/procedures/{PROCEDURE}")
    status, created, _ = http(f"{scaled.gateway_url}/api/v1/dossiers", "POST", filing(procedure, agency),
                              citizen["access_token"])
    assert status == 201, created
    wait_for(lambda: _published_up_to_head(scale_db), timeout=15, what="the log published up to its head")


def _survivor_leads(cluster, dead_pid: int) -> dict[str, Any] | None:
    answer = cluster.dossier.health()
    return answer if answer["pid"] != dead_pid and answer["outbox_leader"] else None
