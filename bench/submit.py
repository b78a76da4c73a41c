"""``python -m bench submit [--quick] [--gateway-url URL]``: dossier submissions through the gateway.

Submits N dossiers (default 1,000) with N clients in flight at once (each with its own
Idempotency-Key) and reports submissions/s and p50/p99 latency, beside a baseline measured in
the same run with the same concurrency: a round trip through the gateway and the dossier
service that does almost no work (public lookup of an existing code: one RPC, one index probe).
A client whose connection breaks retries with the same key, as a real one would; the retries
are counted, and the run checks that exactly N dossiers were filed (no retry filed twice).
A submission or lookup that still failed, or a count of filed dossiers other than N, ends the
run with ``FAILED submit errors=N`` instead of its ``RESULT`` line.
The system runs on a vhost of its own, so no other system on the broker answers its RPCs.

When it starts the system itself, a submission counts as done once its downstream work is
done too: the router has delivered it to the agency's queue and identity has sent the
applicant's SMS notice. The run waits for both (up to ``DOWNSTREAM_TIMEOUT_S``), reports
``completed_per_s`` from the first submission to the last of them, and takes the ``ratio``
from that rate (``http_ratio`` is the rate of 201 answers alone); a submission left without
its delivery or notice fails the run.

``--rate R --seconds S`` is the open-loop form: R submissions per second offered for S
seconds whatever the answers (each handed to a thread at its planned moment and timed from
that moment, so that a late start counts as waiting), after the same for the lookup; the
generator's own garbage collector is held off during each, as its full collections would stop
every request thread. Figures are the p50/p99 of each, and ``ratio`` is then ``p99_ratio``
(submission p99 over lookup p99; target at half the closed-loop maximum: at most 3).
``--rate half`` measures that maximum first in the same run (100 submissions, 100 in flight,
until delivered and noticed) and offers half of it; a fixed rate is preceded by the same burst,
so that its submissions, like the lookups, meet a warmed-up path.

Without ``--gateway-url`` it starts the whole system on a throw-away database. It needs a
signed-in citizen (``tests.support.accounts.register_citizen``) and a procedure with an
implementing agency in the seeded catalog.

``--layer filing`` is the gateway layer with the router and identity stopped once the first
submission's delivery and notice are done (their queues keep the events that follow): the
filing path alone (the gateway, the dossier service with its transaction and outbox relay,
PostgreSQL and the broker's enqueue) against the same lookup. It is not the target; it is the
most the ratio could reach if routing and the notice cost nothing at all (``ratio`` is then
the rate of 201 answers over the lookup's).

``--layer repository`` measures the submit transaction alone (code counter, blob, the
projections, event append with its hash chain) from a thread pool, beside a bare INSERT of
an equivalent row (same JSON payload) into a plain table: what the log and projections cost.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.support import (
    Failures,
    MachineCpu,
    collector_held,
    finish,
    free_port,
    ms,
    print_measures,
    private_vhost,
    request_json,
    run_pool,
    throwaway_database,
)
from bench.support import bench_server as _bench_server  # also what bench.scale and bench.load import
from portal_common import config

PDF = base64.b64encode(b"%PDF-1.4\n% bench document\n").decode()
RETRIES = 3  # attempts after a broken connection, with the same Idempotency-Key




def _citizen_token(gateway_url: str) -> str:
    try:
        from tests.support.accounts import register_citizen  # the identity test helper
    except ImportError:
        raise SystemExit("bench submit needs tests/support/accounts.py (register_citizen) to sign a citizen in") \
            from None
    account = register_citizen(gateway_url)
    if isinstance(account, str):
        return account
    return account["access_token"] if isinstance(account, dict) else account.access_token


def _filing(gateway_url: str) -> dict[str, Any]:
    """A complete filing for the first online procedure that has an implementing agency."""
    return _filing_and_agency(gateway_url)[0]


def _filing_and_agency(gateway_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``_filing`` and the agency it is addressed to, as the catalog lists it."""
    status, page = request_json(f"{gateway_url}/api/v1/procedures?page_size=50")
    if status != 200:
        raise SystemExit(f"catalog search answered {status}: {page}")
    for item in page.get("items", []):
        if item.get("online_level") == "none":
            continue
        _, procedure = request_json(f"{gateway_url}/api/v1/procedures/{item['code']}")
        _, agencies = request_json(f"{gateway_url}/api/v1/procedures/{item['code']}/agencies")
        agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
        if not agencies:
            continue
        documents = [{"requirement": str(d["id"]), "name": f"{d['id']}.pdf", "content_type": "application/pdf",
                      "content_base64": PDF} for d in procedure.get("required_documents", []) if d.get("mandatory")]
        area = {k: str(agencies[0][f"{k}_code"]) for k in ("province", "ward") if agencies[0].get(f"{k}_code")}
        return ({"procedure_code": item["code"], "agency_code": agencies[0]["code"],
                 "applicant": {"full_name": "Bench Applicant", **area}, "form": {}, "documents": documents},
                agencies[0])
    raise SystemExit("no procedure with an implementing agency in the catalog")


def _places(gateway_url: str, agency: dict[str, Any], count: int) -> list[dict[str, str]]:
    """Up to ``count`` applicants' places (province and ward) that ``agency`` serves, each one a
    place the catalog's answers have not been kept for: every ward of its province for a
    province's agency, of the country for a central one, its own ward for a commune's."""
    if count <= 1 or agency.get("level") == "commune":
        return []
    if agency.get("level") == "province":
        provinces = [str(agency["province_code"])]
    else:
        status, page = request_json(f"{gateway_url}/api/v1/provinces")
        if status != 200:
            raise SystemExit(f"the provinces answered {status}: {page}")
        provinces = [str(p["code"]) for p in page["items"]]
    places: list[dict[str, str]] = []
    for province in provinces:
        status, found = request_json(f"{gateway_url}/api/v1/provinces/{province}")
        if status != 200:
            raise SystemExit(f"province {province} answered {status}: {found}")
        places += [{"province": province, "ward": str(w["code"])} for w in found.get("wards", [])]
        if len(places) >= count:
            break
    return places[:count]


def _rate(text: str) -> float:
    """``--rate``: a positive number, or ``half`` (0: measured in the run)."""
    if text == "half":
        return 0.0
    value = float(text)
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("a rate between 0 and 10000 per second, or 'half'")
    return value


def _run(n: int, concurrency: int, one) -> tuple[float, list[float], int]:
    """``one(i)`` for i < n, ``concurrency`` at once: seconds, latencies and failures (a call
    that returns false or raises)."""
    return run_pool(range(n), concurrency, one)


def _run_open(rate: float, seconds: float, one) -> tuple[float, list[float], int]:
    """``one(i)`` offered at ``rate`` per second for ``seconds`` (open loop): seconds until the
    last answer, latencies timed from each planned start, failures.

    One thread hands each call to the pool at its planned moment, so the pool only grows to the
    calls actually in flight (at most 1,000) instead of starting a sleeping thread per call at
    once; a call the dispatcher or the pool starts late is still timed from its plan. The
    generator's own collector is held off meanwhile (``collector_held``)."""
    n = max(int(rate * seconds), 1)

    def planned(i: int, at: float) -> tuple[float, bool]:
        try:
            ok = one(i)
        except Exception:
            ok = False
        return time.perf_counter() - at, ok

    with collector_held(), ThreadPoolExecutor(max_workers=min(n, 1000)) as pool:
        started = time.perf_counter()
        calls = []
        for i in range(n):
            at = started + i / rate
            time.sleep(max(at - time.perf_counter(), 0.0))
            calls.append(pool.submit(planned, i, at))
        results = [call.result() for call in calls]
    return time.perf_counter() - started, [r[0] for r in results], sum(not r[1] for r in results)


def _downstream(cur: Any) -> tuple[int, int]:
    """(DossierSubmitted delivered to the agency's queue, SMS notices of it sent)."""
    cur.execute("SELECT (SELECT count(*) FROM router.deliveries WHERE event_type = 'DossierSubmitted' "
                "AND status IN ('sent', 'acknowledged')), (SELECT count(*) FROM identity.applicant_notices "
                "WHERE event_type = 'DossierSubmitted' AND status = 'sent')")
    return cur.fetchone()


def _wait_downstream(dsn: str, expected: int) -> tuple[int, int, float]:
    """Wait until ``expected`` submissions were delivered and noticed: (delivered, noticed, when)."""
    from portal_common.db import connect  # asks a full server again for a few seconds

    deadline = time.monotonic() + config.env_float("DOWNSTREAM_TIMEOUT_S", 120.0)
    with contextlib.closing(connect(dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            while True:
                delivered, noticed = _downstream(cur)
                now = time.perf_counter()
                if (delivered >= expected and noticed >= expected) or time.monotonic() > deadline:
                    return delivered, noticed, now
                time.sleep(0.05)


def _repository_layer(n: int, concurrency: int) -> int:
    from portal_common.db import Database
    from portal_common.eventstore import EventStore
    from portal_common.migrations import migrate
    from services.dossier.application import on_postgres

    with throwaway_database(f"portal_bench_submit_{uuid.uuid4().hex[:6]}", _bench_server()) as dsn:
        migrate(dsn, "dossier", "services.dossier", create_database=False)
        db = Database(dsn, "dossier", size=concurrency)
        repo = on_postgres(db, EventStore(db))
        with db.transaction(dict_rows=False) as cur:
            cur.execute("CREATE TABLE bare (id bigserial PRIMARY KEY, code text, payload jsonb, at timestamptz)")
        payload = json.dumps({"procedure": PROCEDURE, "applicant": {"full_name": "Bench"}, "documents": []})

        def bare_one(i: int) -> bool:
            with db.transaction(dict_rows=False) as cur:
                cur.execute("INSERT INTO bare (code, payload, at) VALUES (%s, %s, now())", (f"B-{i}", payload))
            return True

        def submit_one(i: int) -> bool:
            file_one(repo, i, f"B{i % 20}")
            return True

        try:
            base_s, base_lat, base_fail = _run(n, concurrency, bare_one)
            sub_s, sub_lat, sub_fail = _run(n, concurrency, submit_one)
        finally:
            db.close()
    failures = Failures()
    failures.add("baseline INSERT", base_fail)
    failures.add("submit", sub_fail)
    return _report("repository", n, concurrency, "baseline: bare INSERT of the row", base_s, base_lat, base_fail,
                   sub_s, sub_lat, sub_fail, failures)


PDF_BYTES = base64.b64decode(PDF)
PROCEDURE = {"code": "1.000001", "version": 1, "name": "Bench procedure", "processing_days": 5}


def file_one(repo: Any, i: int, agency: str) -> None:
    """One filing straight through the dossier service's repository (``--layer repository``,
    ``bench pool``): a citizen's form with one small PDF, to ``agency``, under a new key."""
    from portal_common.eventstore.events import Actor, EventContext
    from services.dossier.domain.documents import check_upload

    upload = check_upload("form", "form.pdf", "application/pdf", PDF_BYTES + str(i).encode(), "d")
    repo.submit(owner={"account_id": f"acc-{i}", "kind": "citizen", "subject": None},
                applicant={"full_name": "Bench"}, form={}, procedure=PROCEDURE,
                agency={"code": agency, "name": "Bench agency"}, uploads=[upload],
                idempotency_key=f"k-{i}-{uuid.uuid4().hex[:8]}",
                context=EventContext(actor=Actor("citizen", f"acc-{i}")))


def _report(layer: str, n: int, concurrency: int, baseline_name: str, base_s: float, base_lat: list[float],
            base_fail: int, sub_s: float, sub_lat: list[float], sub_fail: int, failures: Failures,
            extra: str = "", ratio: float | None = None) -> int:
    base_rate, sub_rate = n / base_s, n / sub_s
    ratio = sub_rate / base_rate if ratio is None else ratio
    print(f"{n} requests per measure, {concurrency} in flight, layer: {layer}")
    print_measures([(baseline_name, base_rate, base_lat, base_fail), ("submit dossier", sub_rate, sub_lat, sub_fail)],
                   40)
    return finish("submit", f"layer={layer} dossiers={n} concurrency={concurrency} submits_per_s={sub_rate:.1f} "
                  f"p50_ms={ms(sub_lat, 50):.1f} p99_ms={ms(sub_lat, 99):.1f} "
                  f"{extra + ' ' if extra else ''}"
                  f"baseline_per_s={base_rate:.1f} baseline_p50_ms={ms(base_lat, 50):.1f} "
                  f"ratio={ratio:.3f}", failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench submit")
    parser.add_argument("--quick", action="store_true", help="100 dossiers, 100 in flight")
    parser.add_argument("--dossiers", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--gateway-url", default=None, help="a running system (default: start one)")
    parser.add_argument("--layer", choices=("gateway", "filing", "repository"), default="gateway",
                        help="gateway: the whole system (the target); filing: the router and identity stopped "
                             "after the warm-up (the filing path's own bound); repository: the transaction alone")
    parser.add_argument("--rate", type=_rate, default=None,
                        help="open loop: submissions offered per second, or 'half': half the closed-loop "
                             "maximum measured first in the same run")
    parser.add_argument("--seconds", type=float, default=None, help="open loop: for how long (default 20, 10 quick)")
    parser.add_argument("--places", type=int, default=1,
                        help="file from this many applicants' places (wards) in turn, as a country's applicants "
                             "do (default 1: one place, every catalog answer kept after the first)")
    args = parser.parse_args(argv)
    open_loop = None if args.rate is None else (args.rate, args.seconds or (10.0 if args.quick else 20.0))
    n = args.dossiers or (100 if args.quick else 1000)
    if args.layer == "repository":
        return _repository_layer(n, args.concurrency or 20)
    concurrency = args.concurrency or n
    filing_only = args.layer == "filing"
    if args.gateway_url is not None:
        if filing_only:
            parser.error("--layer filing starts its own system (it stops the router and identity)")
        return _gateway_layer(args.gateway_url, n, concurrency, None, open_loop, places=args.places)
    base_uri = config.amqp_uri()
    with private_vhost(base_uri, f"bench_submit_{uuid.uuid4().hex[:8]}") as amqp_uri:
        if amqp_uri == base_uri:
            print("warning: no private vhost (rabbitmqctl unavailable); using the broker's default", file=sys.stderr)
        return _gateway_layer(None, n, concurrency, amqp_uri, open_loop, filing_only, args.places)


def _gateway_layer(gateway_url: str | None, n: int, concurrency: int, amqp_uri: str | None,
                   open_loop: tuple[float, float] | None = None, filing_only: bool = False,
                   places: int = 1) -> int:
    dsn = None
    downstream: tuple[int, int, float] | None = None
    with contextlib.ExitStack() as stack:
        system = None
        if gateway_url is None:
            from deploy.launcher import LocalSystem, migrate_and_seed

            name = f"portal_bench_submit_{uuid.uuid4().hex[:6]}"
            dsn = stack.enter_context(throwaway_database(name, _bench_server()))
            migrate_and_seed(dsn)
            system = LocalSystem(dsn, amqp_uri, config.env_int("BENCH_GATEWAY_PORT", 0) or free_port(),
                                 log_dir=Path(tempfile.mkdtemp(prefix="bench-submit-logs-")),
                                 extra_env={"LOCAL_ADAPTERS": "yes", "RATE_LOOKUP": "10000000",
                                            "RATE_DEFAULT": "10000000", "RATE_SIGNIN": "100000",
                                            "RATE_REGISTER": "100000", "RATE_OTP": "100000",
                                            "DB_POOL_SIZE": "4", "DOSSIER_DB_POOL_SIZE": "10"})
            system.start()
            gateway_url = system.gateway_url
        try:
            if system is not None:
                system.wait_ready(timeout=120)
            token = _citizen_token(gateway_url)
            auth = {"Authorization": f"Bearer {token}"}
            filing, agency = _filing_and_agency(gateway_url)
            spread = _places(gateway_url, agency, places)
            if places > 1:
                print(f"filing from {max(len(spread), 1)} places ({agency.get('level')} agency {agency['code']})")

            def filing_of(i: int) -> dict[str, Any]:
                if not spread:
                    return filing
                return dict(filing, applicant=dict(filing["applicant"], **spread[i % len(spread)]))

            answers: Counter[str] = Counter()

            def submit_one(i: int) -> bool:
                # as a real client does: a connection that broke is retried with the same key
                key = f"bench-{uuid.uuid4().hex}"
                for attempt in range(RETRIES + 1):
                    try:
                        status, body = request_json(f"{gateway_url}/api/v1/dossiers", "POST", filing_of(i),
                                                dict(auth, **{"Idempotency-Key": key}))
                    except OSError as exc:
                        answers[f"{type(exc).__name__} (attempt {attempt + 1})"] += 1
                        continue
                    answers[str(status) if status in (200, 201) else f"{status} {(body or {}).get('code')}"] += 1
                    return status in (200, 201)
                return False

            status, first = request_json(f"{gateway_url}/api/v1/dossiers", "POST", filing,
                                     dict(auth, **{"Idempotency-Key": f"bench-{uuid.uuid4().hex}"}))
            if status != 201:
                raise SystemExit(f"a first submission answered {status}: {first}")

            def noop_one(i: int) -> bool:
                status, _ = request_json(f"{gateway_url}/api/v1/lookup/{first['code']}")
                return status == 200

            _, _, warm_fail = _run(min(n, 50), min(concurrency, 50), noop_one)  # warm up connections and workers
            if dsn is not None:
                _wait_downstream(dsn, 1)
            if filing_only:  # the first submission was routed and noticed; nothing after it is
                for service in ("router", "identity"):
                    system.stop_service(service)
                dsn = None
            probed = 0
            if open_loop is not None:
                # the closed-loop maximum first (as many in flight as the quick run): --rate half
                # offers half of it; a fixed --rate takes it as the submission path's warm-up,
                # so that no filing in the window pays a one-time cost the lookups paid before
                probed = min(n, 100)
                probe_started = time.perf_counter()
                probe_s, _, probe_fail = _run(probed, min(concurrency, 100), submit_one)
                if probe_fail:
                    raise SystemExit(f"{probe_fail} submissions failed while measuring the maximum")
                if dsn is not None:  # the maximum counts a submission once its downstream work is done
                    probe_s = _wait_downstream(dsn, probed + 1)[2] - probe_started
                maximum = probed / probe_s
                offered = round(maximum / 2, 1) if open_loop[0] == 0 else open_loop[0]
                print(f"closed-loop maximum: {maximum:.1f} submissions/s completed ({probed} with "
                      f"{min(concurrency, 100)} in flight); offering {offered:g} per second", flush=True)
                open_loop = (offered, open_loop[1])
            if open_loop is not None:
                with MachineCpu() as base_cpu:
                    base_s, base_lat, base_fail = _run_open(*open_loop, noop_one)
                started = time.perf_counter()
                with MachineCpu() as sub_cpu:
                    sub_s, sub_lat, sub_fail = _run_open(*open_loop, submit_one)
                n = len(sub_lat)
                machine = (base_cpu.summary(), sub_cpu.summary())
            else:
                base_s, base_lat, base_fail = _run(n, concurrency, noop_one)
                started = time.perf_counter()
                sub_s, sub_lat, sub_fail = _run(n, concurrency, submit_one)
            if dsn is not None:  # the first submission's work (and the probe's) is counted too
                delivered, noticed, done_at = _wait_downstream(dsn, n + 1 + probed)
                downstream = (delivered - 1 - probed, noticed - 1 - probed, done_at - started)
            _, mine = request_json(f"{gateway_url}/api/v1/dossiers?page_size=1", headers=auth)
            filed = mine["total"] - 1 - probed  # every retried submission made one dossier, not two
        finally:
            if system is not None:
                system.stop()
    retried = sum(v for k, v in answers.items() if "attempt" in k)
    print(f"submission answers: {dict(answers)}; dossiers filed: {filed}")
    failures = Failures()
    failures.add("warm-up lookup", warm_fail)
    failures.add("baseline lookup", base_fail)
    # a submission whose broken connection was retried to a success is a retry, not a failure
    failures.add("submission refused or abandoned (see the answers above)", sub_fail)
    if filed != n:
        failures.add(f"{filed} dossiers filed for {n} submissions", abs(filed - n) or 1)
    extra = f"places={max(len(spread), 1)} retried={retried} filed={filed}"
    if downstream is not None:
        delivered, noticed, done_s = downstream
        print(f"downstream: {delivered} delivered to the agency, {noticed} SMS notices sent, "
              f"the last {done_s - sub_s:.2f} s after the last 201")
        if delivered != n:
            failures.add("submissions not delivered to the agency", abs(n - delivered) or 1)
        if noticed != n:
            failures.add("submissions without the applicant's SMS notice", abs(n - noticed) or 1)
        extra += (f" delivered={delivered} noticed={noticed} completed_per_s={n / done_s:.1f} "
                  f"http_ratio={(n / sub_s) / (len(base_lat) / base_s):.3f}")
    p99_ratio = None
    if open_loop is not None:
        rate, seconds = open_loop
        p99_ratio = ms(sub_lat, 99) / max(ms(base_lat, 99), 1e-9)
        print(f"open loop: {rate:g} offered per second for {seconds:g} s, timed from each planned start")
        for window, shares in zip(("lookups", "submissions"), machine, strict=True):
            if shares is not None:
                print(f"the machine's CPUs during the {window}: {shares[0]:.0f}% busy, {shares[1]:.1f}% stolen "
                      f"by the hypervisor, at most {shares[2]:.0f}% stolen in one second")
        if machine[1] is not None:
            busy, steal, steal_max = machine[1]
            extra = f"busy_pct={busy:.0f} steal_pct={steal:.1f} steal_max_pct={steal_max:.0f} " + extra
        extra = (f"mode=open rate={rate:g} seconds={seconds:g} lookup_p99_ms={ms(base_lat, 99):.1f} "
                 f"p99_ratio={ms(sub_lat, 99) / max(ms(base_lat, 99), 1e-9):.2f} " + extra)
    if filing_only:
        print("layer filing: the router and identity were stopped, so no submission was routed or noticed; "
              "the ratio is the filing path's own bound, not the target")
    layer = "filing" if filing_only else "gateway"
    return _report(layer, n, concurrency, "baseline: lookup RPC through gateway", base_s, base_lat, base_fail,
                   sub_s if downstream is None else downstream[2], sub_lat, sub_fail, failures, extra=extra,
                   ratio=p99_ratio)
