"""``python -m bench delivery [--quick]``: dossier event -> agency queue delivery through the router.

Starts the router (``nameko run``) on a throw-away database and RabbitMQ vhost, then publishes
``DossierSubmitted`` envelopes on ``dossier.events`` exactly as the outbox relay does
(persistent, publisher confirms) and consumes the agency's quorum queue with pika, as an
agency back office would. Measured:

* latency: one event at a time, publish -> message received from the agency queue (p50/p99);
* load: N events published back to back, deliveries/s until the last one is received.

Baseline in the same run, same client code: the same envelopes published with confirms to a
plain durable queue and consumed straight back (no router: no dedupe record, no delivery row,
no event append, no second publish). Last line:
``RESULT delivery p50_ms=... p99_ms=... deliveries_per_s=... base_p50_ms=... ... ratios``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

import pika
from kombu import Connection, Exchange, Producer, Queue

from portal_common import config
from portal_common.db import drop_database, ensure_database
from portal_common.migrations import migrate

AGENCY = "BENCH.AGENCY"


def _vhost(base_uri: str, name: str) -> tuple[str, bool]:
    base = urlparse(base_uri)
    if base.hostname in ("127.0.0.1", "localhost") and shutil.which("rabbitmqctl"):
        ok = subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], capture_output=True, timeout=60).returncode == 0
        ok = ok and subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, base.username or "guest",
                                    ".*", ".*", ".*"], capture_output=True, timeout=60).returncode == 0
        if ok:
            return urlunparse(base._replace(path="/" + quote(name, safe=""))), True
    return base_uri, False


def _envelope(code: str) -> dict:
    now = time.time()
    return {
        "event_id": str(uuid.uuid4()), "event_type": "DossierSubmitted", "schema_version": 1,
        "stream_id": f"dossier-{code}", "stream_type": "dossier", "stream_version": 1, "position": 1,
        "occurred_at": "2026-01-01T00:00:00+00:00", "recorded_at": "2026-01-01T00:00:00+00:00",
        "correlation_id": None, "causation_id": None, "actor": None,
        "data": {"code": code, "agency": {"code": AGENCY}, "form": {"sent_at": now},
                 "owner": {"account_id": "bench", "kind": "citizen"}, "applicant": {"full_name": "Bench"},
                 "procedure": {"code": "1.000001", "version": 1, "name": "Bench", "processing_days": 1},
                 "documents": [], "submitted_at": "2026-01-01T00:00:00+00:00"},
    }


class Receiver(threading.Thread):
    """Consumes a queue with pika, acking each message; records arrival times by dossier code."""

    def __init__(self, amqp_uri: str, queue: str, declare):
        super().__init__(daemon=True)
        self.amqp_uri, self.queue, self.declare = amqp_uri, queue, declare
        self.arrived: dict[str, float] = {}
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
            msg = json.loads(body)
            data = msg.get("data", msg)
            with self.cond:
                self.arrived[data["code"]] = time.time()
                self.cond.notify_all()
            channel.basic_ack(method.delivery_tag)
        with contextlib.suppress(Exception):
            channel.cancel()
            conn.close()

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.arrived) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def _measure(amqp_uri: str, exchange: Exchange, routing_key: str, receiver: Receiver,
             latency_n: int, load_n: int, label: str) -> dict:
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), exchange=exchange)

        def send(code: str) -> float:
            env = _envelope(code)
            producer.publish(json.dumps(env), routing_key=routing_key, content_type="application/json",
                             delivery_mode=2, message_id=env["event_id"], retry=False)
            return env["data"]["form"]["sent_at"]

        latencies = []
        for i in range(latency_n):
            code = f"{label}-L{i}-{uuid.uuid4().hex[:6]}"
            target = len(receiver.arrived) + 1
            sent = send(code)
            if not receiver.wait(target, 30):
                raise SystemExit(f"{label}: a delivery did not arrive within 30 s")
            latencies.append((receiver.arrived[code] - sent) * 1000)
        before = len(receiver.arrived)
        started = time.time()
        for i in range(load_n):
            send(f"{label}-N{i}-{uuid.uuid4().hex[:6]}")
        if not receiver.wait(before + load_n, 300):
            raise SystemExit(f"{label}: only {len(receiver.arrived) - before}/{load_n} arrived")
        elapsed = max(receiver.arrived.values()) - started
    latencies.sort()
    return {"p50": statistics.median(latencies), "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "rate": load_n / elapsed}


def _wait_router(amqp_uri: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    from nameko.standalone.rpc import ClusterRpcProxy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the router exited while starting")
        try:
            with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=2) as proxy:
                if proxy.router.health()["status"] == "ok":
                    return
        except Exception:
            time.sleep(0.3)
    raise SystemExit("the router did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delivery")
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    parser.add_argument("--latency-n", type=int, default=None)
    parser.add_argument("--load-n", type=int, default=None)
    args = parser.parse_args(argv)
    latency_n = args.latency_n or (50 if args.quick else 300)
    load_n = args.load_n or (300 if args.quick else 3000)

    from deploy.launcher import LocalSystem

    run = uuid.uuid4().hex[:8]
    server = config.database_url().rsplit("/", 1)[0]
    dsn = f"{server}/portal_bench_delivery_{run}"
    amqp, own_vhost = _vhost(config.amqp_uri(), f"portal_bench_delivery_{run}")
    ensure_database(dsn)
    migrate(dsn, "router", "services.router", create_database=False)
    logs = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    router = LocalSystem(dsn, amqp, 0, log_dir=logs, extra_env={"OUTBOX_IDLE_WAIT": "0.2", "CATALOG_FALLBACK": "no"})
    proc = router.start_one("router")
    try:
        _wait_router(amqp, proc)
        routed = Receiver(amqp, f"agency.{AGENCY}", lambda ch: (
            ch.exchange_declare("agency.deliveries", "topic", durable=True),
            ch.queue_declare(f"agency.{AGENCY}", durable=True, arguments={"x-queue-type": "quorum"}),
            ch.queue_bind(f"agency.{AGENCY}", "agency.deliveries", f"agency.{AGENCY}.#")))
        routed.start()
        routed.ready.wait(10)
        dossier_x = Exchange("dossier.events", type="topic", durable=True, delivery_mode=2)
        print(f"router: {latency_n} sequential + {load_n} back-to-back events", file=sys.stderr)
        measured = _measure(amqp, dossier_x, "DossierSubmitted", routed, latency_n, load_n, "R")
        routed.stop_flag = True

        plain_x = Exchange("bench.plain", type="direct", durable=True, delivery_mode=2)
        with Connection(amqp) as conn:
            Queue("bench.plain", exchange=plain_x, routing_key="plain", durable=True,
                  queue_arguments={"x-queue-type": "quorum"})(conn.channel()).declare()
        base = Receiver(amqp, "bench.plain", lambda ch: None)
        base.start()
        base.ready.wait(10)
        print("baseline: the same through a plain quorum queue", file=sys.stderr)
        baseline = _measure(amqp, plain_x, "plain", base, latency_n, load_n, "B")
        base.stop_flag = True
    finally:
        router.stop()
        with contextlib.suppress(Exception):
            drop_database(dsn)
        if own_vhost:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", urlparse(amqp).path.lstrip("/")],
                           capture_output=True, timeout=60)
    print(f"{'path':<34}{'p50 ms':>10}{'p99 ms':>10}{'msgs/s':>10}")
    for name, m in (("router -> agency queue", measured), ("baseline publish -> consume", baseline)):
        print(f"{name:<34}{m['p50']:>10.2f}{m['p99']:>10.2f}{m['rate']:>10.0f}")
    print(f"RESULT delivery latency_n={latency_n} load_n={load_n} p50_ms={measured['p50']:.2f} "
          f"p99_ms={measured['p99']:.2f} deliveries_per_s={measured['rate']:.1f} "
          f"base_p50_ms={baseline['p50']:.2f} base_p99_ms={baseline['p99']:.2f} "
          f"base_msgs_per_s={baseline['rate']:.1f} p50_ratio={measured['p50'] / baseline['p50']:.1f} "
          f"rate_ratio={measured['rate'] / baseline['rate']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
