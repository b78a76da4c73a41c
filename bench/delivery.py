"""``python -m bench delivery [--quick]``: submission-to-agency-delivery latency and deliveries/s.

Starts the whole system (``deploy.launcher.LocalSystem``) on a throw-away database and
RabbitMQ vhost, signs a citizen in, and consumes the chosen agency's quorum queue with pika
as an agency back office would (acking each message). Measured, in one run:

* submit -> delivered: ``POST /api/v1/dossiers`` through the gateway, the dossier service's
  event append and outbox relay, the router, the agency queue, until the back office has
  the message. Latency one at a time (p50 / p99), then deliveries/s with many submissions
  in flight (from the first POST to the last message received).
* router alone: ``DossierSubmitted`` envelopes published on ``dossier.events`` as the outbox
  relay does, to the agency queue (latency and rate): the router's share of the above.
* baseline: the same envelopes published with confirms to a plain quorum queue and consumed
  straight back by the same client code (no router, no dedupe record, no delivery row, no
  event append, no second publish).

The last line is ``RESULT delivery p50_ms=... p99_ms=... deliveries_per_s=... router_... base_...``
with the ratios of the end-to-end figures to the baseline; a refused submission or a second
copy received makes it ``FAILED delivery errors=N`` instead.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
from kombu import Connection, Exchange, Producer, Queue

from bench.support import Failures, finish, free_port, private_vhost, request_json, throwaway_database
from portal_common import config

PROCEDURE = "1.001193"  # Đăng ký khai sinh, commune level
PROVINCE = "1"
ROUTER_AGENCY = "BENCH.ROUTER"  # the router-alone stage's agency (no catalog entry needed)
PDF = base64.b64encode(b"%PDF-1.4\n% bench document\n%%EOF\n").decode()


# -- infrastructure ------------------------------------------------------------------------




def _citizen_token(gateway_url: str) -> str:
    try:
        from tests.support.accounts import register_citizen  # the identity test helper
    except ImportError:
        raise SystemExit("bench delivery needs tests/support/accounts.py (register_citizen)") from None
    return register_citizen(gateway_url)["access_token"]


def _filing(gateway_url: str) -> dict:
    """A complete birth-registration filing for the first commune office of the province."""
    status, procedure = request_json(f"{gateway_url}/api/v1/procedures/{PROCEDURE}")
    if status != 200:
        raise SystemExit(f"the catalog answered {status} for {PROCEDURE}: {procedure}")
    _, agencies = request_json(f"{gateway_url}/api/v1/procedures/{PROCEDURE}/agencies?province={PROVINCE}")
    agencies = agencies.get("items", agencies) if isinstance(agencies, dict) else agencies
    office = next((a for a in agencies if a.get("ward_code")), None)
    if office is None:
        raise SystemExit(f"no commune office implements {PROCEDURE} in province {PROVINCE}")
    documents = [{"requirement": str(d["id"]), "name": f"{d['id']}.pdf", "content_type": "application/pdf",
                  "content_base64": PDF} for d in procedure["required_documents"] if d.get("mandatory")]
    return {"procedure_code": PROCEDURE, "agency_code": office["code"],
            "applicant": {"full_name": "Bench Applicant", "province": str(office["province_code"]),
                          "ward": str(office["ward_code"])}, "form": {}, "documents": documents}


# -- the agency side -----------------------------------------------------------------------


class Receiver(threading.Thread):
    """Consumes a queue with pika, acking each message; records arrival times by dossier code."""

    def __init__(self, amqp_uri: str, queue: str, declare):
        super().__init__(daemon=True)
        self.amqp_uri, self.queue, self.declare = amqp_uri, queue, declare
        self.arrived: dict[str, float] = {}
        self.copies = 0
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.stop_flag = False

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_uri))
        channel = conn.channel()
        self.declare(channel)
        channel.basic_qos(prefetch_count=200)
        self.ready.set()
        for method, _props, body in channel.consume(self.queue, inactivity_timeout=0.1):
            if self.stop_flag:
                break
            if method is None:
                continue
            now = time.time()
            msg = json.loads(body)
            code = msg.get("dossier_code") or msg["data"]["code"]
            with self.cond:
                if code in self.arrived:
                    self.copies += 1
                else:
                    self.arrived[code] = now
                self.cond.notify_all()
            channel.basic_ack(method.delivery_tag)
        with contextlib.suppress(Exception):
            channel.cancel()
            conn.close()

    def wait_for(self, codes: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(c in self.arrived for c in codes):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def _agency_queue(agency: str):
    def declare(ch) -> None:
        ch.exchange_declare("agency.deliveries", "topic", durable=True)
        ch.queue_declare(f"agency.{agency}", durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(f"agency.{agency}", "agency.deliveries", f"agency.{agency}.#")
    return declare


# -- measures ------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 30 samples is the largest); not ``support.percentile``,
    which interpolates."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _summary(latencies_s: list[float], count: int, elapsed_s: float) -> dict:
    ms = [x * 1000 for x in latencies_s]
    return {"p50": _pct(ms, 50), "p99": _pct(ms, 99), "rate": count / elapsed_s, "n": len(ms)}


def _measure_submit(gateway_url: str, token: str, filing: dict, receiver: Receiver, latency_n: int,
                    load_n: int, concurrency: int) -> dict:
    headers = {"Authorization": f"Bearer {token}"}

    failed = Failures()

    def submit() -> tuple[str | None, float]:
        """A refused submission (e.g. 503 when the shared database is out of connections)
        is counted, not timed: the run then ends without a result."""
        started = time.time()
        try:
            status, body = request_json(f"{gateway_url}/api/v1/dossiers", "POST", filing,
                                        dict(headers, **{"Idempotency-Key": uuid.uuid4().hex}))
        except OSError as exc:
            failed.add(type(exc).__name__)
            return None, started
        if status != 201:
            failed.add(f"{status} {body.get('code') if isinstance(body, dict) else body}")
            return None, started
        return body["code"], started

    latencies = []
    for _ in range(latency_n):
        code, started = submit()
        if code is None:
            continue
        if not receiver.wait_for([code], 60):
            raise SystemExit(f"{code} did not reach the agency queue within 60 s")
        latencies.append(receiver.arrived[code] - started)
    started = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = list(pool.map(lambda _i: submit(), range(load_n)))
    codes = [c for c, _ in sent if c is not None]
    if not latencies or not codes:
        raise SystemExit(f"no submission was accepted: {failed}")
    if not receiver.wait_for(codes, 300):
        raise SystemExit(f"only {sum(c in receiver.arrived for c in codes)}/{len(codes)} submissions were delivered")
    elapsed = max(receiver.arrived[c] for c in codes) - started
    return {**_summary(latencies, len(codes), elapsed), "failed": failed}


def _envelope(code: str, agency: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()), "event_type": "DossierSubmitted", "schema_version": 1,
        "stream_id": f"dossier-{code}", "stream_type": "dossier", "stream_version": 1, "position": 1,
        "occurred_at": "2026-01-01T00:00:00+00:00", "recorded_at": "2026-01-01T00:00:00+00:00",
        "correlation_id": None, "causation_id": None, "actor": None,
        "data": {"code": code, "agency": {"code": agency}, "form": {},
                 "owner": {"account_id": "bench", "kind": "citizen"}, "applicant": {"full_name": "Bench"},
                 "procedure": {"code": PROCEDURE, "version": 1, "name": "Bench", "processing_days": 1},
                 "documents": [], "submitted_at": "2026-01-01T00:00:00+00:00"},
    }


def _measure_publish(amqp_uri: str, exchange: Exchange, routing_key: str, receiver: Receiver,
                     latency_n: int, load_n: int, label: str) -> dict:
    """One client publishing envelopes with confirms; the receiver times their arrival."""
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), exchange=exchange)

        def send(code: str) -> float:
            env = _envelope(code, ROUTER_AGENCY)
            started = time.time()
            producer.publish(json.dumps(env), routing_key=routing_key, content_type="application/json",
                             delivery_mode=2, message_id=env["event_id"], retry=False)
            return started

        latencies = []
        for i in range(latency_n):
            code = f"{label}-L{i}-{uuid.uuid4().hex[:8]}"
            started = send(code)
            if not receiver.wait_for([code], 60):
                raise SystemExit(f"{label}: a message did not arrive within 60 s")
            latencies.append(receiver.arrived[code] - started)
        codes = [f"{label}-N{i}-{uuid.uuid4().hex[:8]}" for i in range(load_n)]
        started = time.time()
        for code in codes:
            send(code)
        if not receiver.wait_for(codes, 300):
            raise SystemExit(f"{label}: only {sum(c in receiver.arrived for c in codes)}/{load_n} arrived")
        elapsed = max(receiver.arrived[c] for c in codes) - started
    return _summary(latencies, load_n, elapsed)


def _start(receiver: Receiver) -> Receiver:
    receiver.start()
    if not receiver.ready.wait(30):
        raise SystemExit(f"could not consume {receiver.queue}")
    return receiver


# -- the run -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delivery")
    parser.add_argument("--quick", action="store_true", help="a smoke run within a minute")
    parser.add_argument("--latency-n", type=int, default=None, help="one-at-a-time samples per path")
    parser.add_argument("--load-n", type=int, default=None, help="messages per load measure")
    parser.add_argument("--concurrency", type=int, default=20, help="submissions in flight during the load")
    args = parser.parse_args(argv)
    latency_n = args.latency_n or (30 if args.quick else 300)
    load_n = args.load_n or (200 if args.quick else 2000)

    from deploy.launcher import LocalSystem, migrate_and_seed

    run = uuid.uuid4().hex[:8]
    with (private_vhost(config.amqp_uri(), f"portal_bench_delivery_{run}") as amqp,
          throwaway_database(f"portal_bench_delivery_{run}") as dsn):
        print(f"starting the system (database portal_bench_delivery_{run})", file=sys.stderr)
        migrate_and_seed(dsn)
        logs = Path(f"/tmp/bench-delivery-{run}")
        system = LocalSystem(dsn, amqp, free_port(), log_dir=logs, extra_env={
            "LOCAL_ADAPTERS": "yes", "RATE_DEFAULT": "10000000", "RATE_LOOKUP": "10000000", "RATE_SIGNIN": "100000",
            "RATE_REGISTER": "100000", "RATE_OTP": "100000",
            "DB_POOL_SIZE": "6"})  # the database server is shared with other work: stay well under its 100 clients
        receivers: list[Receiver] = []
        try:
            system.start()
            system.wait_ready(timeout=120)
            gateway = system.gateway_url
            token = _citizen_token(gateway)
            filing = _filing(gateway)
            agency = filing["agency_code"]

            office = _start(Receiver(amqp, f"agency.{agency}", _agency_queue(agency)))
            receivers.append(office)
            warm = _measure_submit(gateway, token, filing, office, 5, 20, args.concurrency)
            print(f"submit -> delivered: {latency_n} one at a time, {load_n} with {args.concurrency} in flight",
                  file=sys.stderr)
            e2e = _measure_submit(gateway, token, filing, office, latency_n, load_n, args.concurrency)

            routed = _start(Receiver(amqp, f"agency.{ROUTER_AGENCY}", _agency_queue(ROUTER_AGENCY)))
            receivers.append(routed)
            dossier_x = Exchange("dossier.events", type="topic", durable=True, delivery_mode=2)
            _measure_publish(amqp, dossier_x, "DossierSubmitted", routed, 5, 20, "W")  # warm-up
            print(f"router alone: {latency_n} one at a time, {load_n} back to back", file=sys.stderr)
            router = _measure_publish(amqp, dossier_x, "DossierSubmitted", routed, latency_n, load_n, "R")

            plain_x = Exchange("bench.plain", type="direct", durable=True, delivery_mode=2)
            with Connection(amqp) as conn:
                Queue("bench.plain", exchange=plain_x, routing_key="plain", durable=True,
                      queue_arguments={"x-queue-type": "quorum"})(conn.channel()).declare()
            plain = _start(Receiver(amqp, "bench.plain", lambda ch: None))
            receivers.append(plain)
            _measure_publish(amqp, plain_x, "plain", plain, 5, 20, "V")  # warm-up
            print("baseline: the same client through a plain quorum queue", file=sys.stderr)
            base = _measure_publish(amqp, plain_x, "plain", plain, latency_n, load_n, "B")
            copies = sum(r.copies for r in receivers)
        finally:
            for r in receivers:
                r.stop_flag = True
            system.stop()

    print(f"machine: {_cores()} cores; {latency_n} sequential samples and {load_n} messages per path")
    print(f"{'path':<44}{'p50 ms':>9}{'p99 ms':>9}{'msgs/s':>9}")
    for name, m in ((f"submit -> agency queue ({args.concurrency} in flight)", e2e),
                    ("dossier event -> router -> agency queue", router),
                    ("baseline: publish -> plain queue -> consume", base)):
        print(f"{name:<44}{m['p50']:>9.2f}{m['p99']:>9.2f}{m['rate']:>9.1f}")
    failures = Failures()
    for run_failed in (warm["failed"], e2e["failed"]):
        for kind, count in run_failed.kinds().items():
            failures.add(f"refused submission {kind}", count)
    if copies:
        failures.add("second copy received", copies)
    print(f"second copies received: {copies}; refused submissions: {warm['failed'].total + e2e['failed'].total}")
    return finish("delivery", f"latency_n={latency_n} load_n={load_n} concurrency={args.concurrency} "
                  f"p50_ms={e2e['p50']:.2f} p99_ms={e2e['p99']:.2f} deliveries_per_s={e2e['rate']:.1f} "
                  f"router_p50_ms={router['p50']:.2f} router_p99_ms={router['p99']:.2f} "
                  f"router_deliveries_per_s={router['rate']:.1f} "
                  f"base_p50_ms={base['p50']:.2f} base_p99_ms={base['p99']:.2f} base_msgs_per_s={base['rate']:.1f} "
                  f"p50_ratio={e2e['p50'] / base['p50']:.1f} p99_ratio={e2e['p99'] / base['p99']:.1f} "
                  f"rate_ratio={e2e['rate'] / base['rate']:.3f} router_rate_ratio={router['rate'] / base['rate']:.3f} "
                  f"copies={copies}", failures)


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
