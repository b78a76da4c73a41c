"""``python -m bench delivery_subscriptions [--quick]``: deliveries/s through agency subscriptions.

Starts the router alone (``deploy.launcher.LocalSystem``) on a throw-away database and
RabbitMQ vhost, with callbacks to an HTTP server of its own on 127.0.0.1, and publishes
``DossierSubmitted`` envelopes on ``dossier.events`` as the outbox relay does. Measured in one
run, each from the first publish to the last delivery received:

* route (baseline): the existing route delivery of the same events to an agency queue,
  consumed with pika as a back office would;
* unfiltered: one subscription without filters (every event is one signed CloudEvent POST);
* filtered: 50 subscriptions of one agency with filters on procedure and province, each event
  matching 10 of them (every delivery is examined against all 50).

The last line is ``RESULT delivery_subscriptions ... filtered_per_s=... unfiltered_per_s=...
route_per_s=... filtered_ratio=...`` (filtered over unfiltered deliveries/s; the target is at
least 0.8); a missing or second copy at a callback makes it ``FAILED`` instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kombu import Connection, Exchange, Producer
from nameko.standalone.rpc import ClusterRpcProxy

from bench.delivery import Receiver, _agency_queue, _start
from bench.support import Failures, finish, free_port, private_vhost, throwaway_database
from portal_common import config

PROCEDURES = ("P1", "P2", "P3", "P4", "P5")


class Hooks:
    """Callback endpoints ``/hook/<n>``: answer the webhook handshake, count deliveries by
    path and CloudEvent id, remember the last arrival."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}
        self.copies = 0
        self.count = 0
        self.last = 0.0
        self.lock = threading.Condition()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_OPTIONS(self):
                self.send_response(200)
                self.send_header("WebHook-Allowed-Origin", "*")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event_id = json.loads(body)["id"]
                with hooks.lock:
                    seen = hooks.seen.setdefault(self.path, set())
                    if event_id in seen:
                        hooks.copies += 1
                    else:
                        seen.add(event_id)
                        hooks.count += 1
                        hooks.last = time.monotonic()
                    hooks.lock.notify_all()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/{n}"

    def wait(self, total: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.count < total:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True

    def reset(self) -> None:
        with self.lock:
            self.seen, self.copies, self.count = {}, 0, 0


def _envelope(agency: str, n: int, tag: str) -> dict:
    code = f"{agency}-{dt.date.today():%y%m%d}-{tag}{n:05d}"
    now = dt.datetime.now(dt.UTC).isoformat()
    data = {"code": code, "owner": {"account_id": "bench", "kind": "citizen", "subject": None},
            "applicant": {"full_name": "Bench", "province": "01" if n % 2 == 0 else "79"}, "form": {},
            "procedure": {"code": PROCEDURES[n % len(PROCEDURES)], "version": 1, "name": "Bench", "processing_days": 3,
                          "field": "F"},
            "agency": {"code": agency, "name": None, "level": None}, "documents": [], "submitted_at": now,
            "idempotency_key": None}
    return {"event_id": str(uuid.uuid4()), "event_type": "DossierSubmitted", "schema_version": 1,
            "stream_id": f"dossier-{code}", "stream_type": "dossier", "stream_version": 1, "position": n,
            "occurred_at": now, "recorded_at": now, "correlation_id": None, "causation_id": None,
            "actor": {"kind": "system", "id": "bench", "agency_code": None}, "data": data}


def _publish(amqp: str, envelopes: list[dict]) -> tuple[float, float]:
    """Publish with confirms; returns when publishing started (monotonic, wall clock)."""
    exchange = Exchange("dossier.events", type="topic", durable=True, delivery_mode=2)
    with Connection(amqp, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), exchange=exchange)
        started = time.monotonic(), time.time()
        for env in envelopes:
            producer.publish(json.dumps(env), routing_key="DossierSubmitted", content_type="application/json",
                             content_encoding="utf-8", delivery_mode=2, message_id=env["event_id"], retry=False)
    return started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delivery_subscriptions")
    parser.add_argument("--quick", action="store_true", help="a smoke run within a minute")
    parser.add_argument("--events", type=int, default=None, help="events per measure")
    args = parser.parse_args(argv)
    n = args.events or (100 if args.quick else 600)

    from deploy.launcher import LocalSystem, migrate_and_seed
    from services.router.delivery_keys import generate_pem

    run = uuid.uuid4().hex[:8]
    failures = Failures()
    hooks = Hooks()
    figures: dict[str, float] = {}
    with (private_vhost(config.amqp_uri(), f"portal_bench_subs_{run}") as amqp,
          throwaway_database(f"portal_bench_subs_{run}") as dsn):
        migrate_and_seed(dsn, seed=False)
        system = LocalSystem(dsn, amqp, free_port(), log_dir=Path(f"/tmp/bench-subs-{run}"), extra_env={
            "AGENCY_SECRET_DELIVERY_KEY": generate_pem(), "CALLBACK_ALLOW_LOOPBACK": "yes",
            "CATALOG_FALLBACK": "no", "DB_POOL_SIZE": "8", "ROUTER_METRICS_PORT": "0"})
        receiver = None
        try:
            system.start_one("router")
            with ClusterRpcProxy({"AMQP_URI": amqp}, timeout=60) as proxy:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        proxy.router.health()
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise SystemExit("the router did not start") from None
                        time.sleep(0.5)
                unfiltered, filtered, route = f"BSU-{run}", f"BSF-{run}", f"BSR-{run}"
                proxy.router.create_subscription(None, unfiltered, {"callback_url": hooks.url(0),
                                                                    "channels": ["dossiers"], "filters": {}})
                for i in range(50):
                    proxy.router.create_subscription(None, filtered, {
                        "callback_url": hooks.url(i + 1), "channels": ["dossiers"],
                        "filters": {"procedure_code": PROCEDURES[i % 5], "province_code": ["01", "79"],
                                    "status": ["submitted", "received"]}})
            receiver = _start(Receiver(amqp, f"agency.{route}", _agency_queue(route)))

            # warm-up of every path, then the measures
            _publish(amqp, [_envelope(route, i, "W") for i in range(10)])
            _publish(amqp, [_envelope(unfiltered, i, "W") for i in range(10)])
            if not hooks.wait(10, 60):
                failures.add("warm-up deliveries missing")
            hooks.reset()

            envs = [_envelope(route, i, "R") for i in range(n)]
            codes = [e["data"]["code"] for e in envs]
            _, wall = _publish(amqp, envs)
            if not receiver.wait_for(codes, 300):
                failures.add("route deliveries missing", n - sum(c in receiver.arrived for c in codes))
            figures["route"] = n / max(max(receiver.arrived.get(c, wall) for c in codes) - wall, 1e-9)

            started, _ = _publish(amqp, [_envelope(unfiltered, i, "U") for i in range(n)])
            if not hooks.wait(n, 300):
                failures.add("unfiltered deliveries missing", n - hooks.count)
            figures["unfiltered"] = hooks.count / max(hooks.last - started, 1e-9)
            figures["unfiltered_events"] = n / max(hooks.last - started, 1e-9)
            failures.add("second copy at a callback", hooks.copies)
            hooks.reset()

            expected = n * 10  # each event matches the 10 subscriptions of its procedure
            started, _ = _publish(amqp, [_envelope(filtered, i, "F") for i in range(n)])
            if not hooks.wait(expected, 600):
                failures.add("filtered deliveries missing", expected - hooks.count)
            figures["filtered"] = hooks.count / max(hooks.last - started, 1e-9)
            figures["filtered_events"] = n / max(hooks.last - started, 1e-9)
            time.sleep(1.0)
            failures.add("second copy at a callback", hooks.copies)
            failures.add("unexpected delivery", max(0, hooks.count - expected))
            failures.add("second copy in the agency queue", receiver.copies)
        finally:
            if receiver is not None:
                receiver.stop_flag = True
            system.stop()
            hooks.server.shutdown()

    print(f"{n} DossierSubmitted events per path")
    print(f"{'path':<58}{'deliveries/s':>14}{'events/s':>10}")
    print(f"{'route delivery to the agency queue (baseline)':<58}{figures.get('route', 0):>14.1f}"
          f"{figures.get('route', 0):>10.1f}")
    print(f"{'1 subscription, unfiltered (signed CloudEvent POST)':<58}{figures.get('unfiltered', 0):>14.1f}"
          f"{figures.get('unfiltered_events', 0):>10.1f}")
    print(f"{'50 subscriptions with filters (10 match each event)':<58}{figures.get('filtered', 0):>14.1f}"
          f"{figures.get('filtered_events', 0):>10.1f}")
    unfiltered_rate = figures.get("unfiltered") or 1e-9
    return finish("delivery_subscriptions",
                  f"events={n} filtered_per_s={figures.get('filtered', 0):.1f} "
                  f"unfiltered_per_s={figures.get('unfiltered', 0):.1f} route_per_s={figures.get('route', 0):.1f} "
                  f"filtered_ratio={figures.get('filtered', 0) / unfiltered_rate:.2f} "
                  f"unfiltered_vs_route={figures.get('unfiltered', 0) / (figures.get('route') or 1e-9):.2f}",
                  failures)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
