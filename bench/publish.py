"""``python -m bench publish [--quick]``: nameko publishing on held producers against a producer per message.

Options: ``--slices N`` (10, 4 with ``--quick``), ``--messages N`` per slice (500).

Every RPC request, RPC reply and dispatched event goes through nameko's ``Publisher.publish``.
This publishes a small RPC-like body to a queue of a private vhost with nameko's own
``get_producer`` (the baseline: a kombu ``Connection`` built and a pooled channel revived for
each message) and with ``portal_common.publishing.held_producer``, in alternating slices of
``--messages``, with publisher confirms (an RPC request) and without (an RPC reply), and
reads the process's CPU time per message. Every message must reach the queue: the run counts
a missing one, or any exception, as a failure.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import nameko.amqp.publish
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import Publisher

from bench.support import Failures, finish, private_vhost
from portal_common import publishing

STOCK = nameko.amqp.publish.get_producer
BODY = {"args": ["1.000001.000.00.H01"], "kwargs": {"context": {"account_id": str(uuid.uuid4()), "role": "citizen"}}}


def _slice(publisher: Publisher, exchange: Exchange, count: int, failures: Failures) -> tuple[float, float]:
    """CPU and wall seconds for ``count`` publishes."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        try:
            publisher.publish(BODY, exchange=exchange, routing_key="bench")
        except Exception as exc:  # counted: a benchmark with a failure prints no ratio
            failures.add(type(exc).__name__)
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench publish")
    parser.add_argument("--quick", action="store_true", help="4 slices per way")
    parser.add_argument("--slices", type=int, default=None)
    parser.add_argument("--messages", type=int, default=500, help="messages per slice")
    args = parser.parse_args(argv)
    slices = args.slices or (4 if args.quick else 10)
    base = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    failures = Failures()
    totals: dict[tuple[str, str], list[float]] = {}
    sent = 0
    with private_vhost(base, f"bench_publish_{uuid.uuid4().hex[:8]}") as uri:
        exchange = Exchange("bench-publish", type="direct", durable=False)
        conn = Connection(uri, connect_timeout=10)
        queue = Queue("bench-publish", exchange=exchange, routing_key="bench", durable=False,
                      auto_delete=False)(conn.channel())
        queue.declare()
        try:
            for mode, confirms in (("confirmed", True), ("unconfirmed", False)):
                publisher = Publisher(uri, use_confirms=confirms)
                for get_producer in (STOCK, publishing.held_producer):
                    nameko.amqp.publish.get_producer = get_producer
                    _slice(publisher, exchange, 50, failures)  # warm: connections made, pools keyed
                    sent += 50
                for n in range(slices):
                    order = (("nameko", STOCK), ("held", publishing.held_producer))
                    for way, get_producer in order if n % 2 == 0 else order[::-1]:
                        nameko.amqp.publish.get_producer = get_producer
                        cpu, wall = _slice(publisher, exchange, args.messages, failures)
                        sent += args.messages
                        acc = totals.setdefault((mode, way), [0.0, 0.0, 0])
                        acc[0] += cpu
                        acc[1] += wall
                        acc[2] += args.messages
            deadline = time.monotonic() + 10
            while (arrived := queue.queue_declare(passive=True).message_count) < sent - failures.total \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            if arrived != sent - failures.total:
                failures.add("message missing from the queue", sent - failures.total - arrived)
        finally:
            nameko.amqp.publish.get_producer = STOCK
            publishing.close_all()
            queue.delete()
            conn.release()

    print(f"{slices} alternating slices of {args.messages} messages per way; CPU of this process")
    print(f"{'publish':<46}{'CPU us/msg':>12}{'msgs/s':>10}")
    figures = []
    for mode in ("confirmed", "unconfirmed"):
        per = {}
        for way in ("nameko", "held"):
            cpu, wall, count = totals[(mode, way)]
            per[way] = (cpu / count * 1e6, count / wall)
            label = "baseline: nameko's get_producer" if way == "nameko" else "held producer"
            print(f"{label + ', ' + mode:<46}{per[way][0]:>12.1f}{per[way][1]:>10.0f}")
        figures.append(f"{mode}_cpu_us={per['held'][0]:.1f} {mode}_baseline_cpu_us={per['nameko'][0]:.1f} "
                       f"{mode}_cpu_ratio={per['held'][0] / per['nameko'][0]:.3f} "
                       f"{mode}_per_s={per['held'][1]:.0f} {mode}_baseline_per_s={per['nameko'][1]:.0f} "
                       f"{mode}_rate_ratio={per['held'][1] / per['nameko'][1]:.3f}")
    return finish("publish", f"messages={sent} " + " ".join(figures), failures)


if __name__ == "__main__":
    raise SystemExit(main())
