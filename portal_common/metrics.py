"""Prometheus metrics of every service, and the small HTTP server that exposes them.

Each service (through ``portal_common.health.HealthRpc``) gets a ``ServiceMetrics``
dependency that:

- times every worker (RPC, event handler, timer) into ``portal_rpc_calls_total`` and the
  ``portal_rpc_call_seconds`` histogram, by outcome (``ok``, ``refused`` for a typed
  ``ServiceError``, ``error`` for anything else);
- at scrape time reads what only the database and the broker know: events appended and
  published, outbox backlog and age, each event handler's queue depth (consumer lag), and
  the gauges the service registers on its own tables (``portal_common.registry``: deliveries
  by status, dossiers by status ...);
- shows the process's database pools (``portal_db_pool_connections`` by state, idle or
  borrowed, and ``portal_db_pool_size``, per pool named by the attribute that holds it): a pool
  whose borrowed connections reach its size makes requests wait;
- serves ``/metrics``, ``/health`` (liveness) and ``/ready`` (database and broker answer) on
  ``METRICS_PORT`` (per service: ``DOSSIER_METRICS_PORT`` ...; the default is the one the
  service registers; ``0`` picks a free port, reported by the ``health`` RPC; ``off``
  disables it).

Reading counts at scrape time rather than counting in process keeps the figures right across
restarts and several replicas: the log and the broker are the truth.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import eventlet
import eventlet.wsgi
from kombu import Connection
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from portal_common import config, registry
from portal_common.db import live_pools
from portal_common.errors import ServiceError
from portal_common.outbox import read_state
from portal_common.redelivery import PARKED_SUFFIX

log = logging.getLogger(__name__)

DEFAULT_PORTS = registry.Lookup("metrics_port")  # each service's, from its registration

RPC_CALLS = Counter("portal_rpc_calls_total", "Worker calls handled (RPC, event handlers, timers)",
                    ["service", "method", "kind", "outcome"])
RPC_SECONDS = Histogram("portal_rpc_call_seconds", "Worker call latency", ["service", "method", "kind"],
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

# Metric names the scrape-time collector exports for every service; each service's
# registration adds its own gauges (deliveries, dossiers ...).
COLLECTED = (
    "portal_events_appended_total", "portal_events_published_total", "portal_events_total",
    "portal_outbox_backlog_events",
    "portal_outbox_oldest_age_seconds", "portal_consumer_lag_messages", "portal_consumers",
    "portal_parked_messages",
    "portal_metrics_scrape_errors",
)


def metrics_port(service: str) -> int | None:
    """The port a service serves its metrics on; ``None`` when disabled (``off``/negative)."""
    raw = (config.env("METRICS_PORT", None, service) or str(DEFAULT_PORTS.get(service, 0))).strip().lower()
    if raw in ("off", "no", "false", "disabled", "none"):
        return None
    port = int(raw)
    return None if port < 0 else port


def entrypoint_kind(entrypoint: Any) -> str:
    name = type(entrypoint).__name__.lower()
    if "rpc" in name:
        return "rpc"
    if "event" in name or "consumer" in name:
        return "event"
    if "timer" in name:
        return "timer"
    return name


def outcome_of(exc_info: Any) -> str:
    if not exc_info:
        return "ok"
    return "refused" if isinstance(exc_info[1], ServiceError) else "error"


class Source:
    """What one running service contributes at scrape time."""

    def __init__(self, service: str, dsn: str | None, schema: str, amqp_uri: str | None, queues: list[str]):
        self.service = service
        self.dsn = dsn
        self.schema = schema
        self.amqp_uri = amqp_uri
        self.queues = queues
        self.find_queues: Callable[[], list[str]] | None = None
        self.by_type: dict[str, int] = {}
        self._counted_to = 0
        self._reading = threading.Lock()  # one reading at a time: the by-type counts are incremental
        self._db = None

    def database(self):
        if self.dsn is None:
            return None
        if self._db is None:
            from portal_common.db import Database

            self._db = Database(self.dsn, self.schema, size=1, application_name=f"{self.service}-metrics")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    # -- readings ----------------------------------------------------------------------

    def log_readings(self) -> dict[str, Any]:
        """Head, outbox checkpoint and backlog age of the service's event log, and the readings
        the service registers on its own tables (``portal_common.registry``)."""
        db = self.database()
        if db is None:
            return {}
        registration = registry.find(self.service)
        out: dict[str, Any] = {}
        with self._reading, db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT to_regclass(%s)", (f"{self.schema}.events",))
            if cur.fetchone()[0]:
                state = read_state(cur, self.schema)
                head = state.head
                out["log"] = (head, state.checkpoint, state.oldest_unpublished_age_s or 0.0)
                # events by type, counted from where the last scrape stopped (the whole log once)
                cur.execute(f"SELECT event_type, count(*), max(position) FROM {self.schema}.events "
                            "WHERE position > %s AND position <= %s GROUP BY event_type",
                            (self._counted_to, head))
                for event_type, n, _ in cur.fetchall():
                    self.by_type[event_type] = self.by_type.get(event_type, 0) + int(n)
                self._counted_to = max(self._counted_to, int(head))
                out["by_type"] = dict(self.by_type)
            if registration is not None and registration.readings is not None:
                out["registered"] = list(registration.readings(cur, self.schema))
        return out

    def queue_readings(self) -> dict[str, tuple[int, int]]:
        """Messages waiting and consumers attached, per event-handler queue."""
        queues = self.queues or (self.find_queues() if self.find_queues else [])
        if not queues or not self.amqp_uri:
            return {}
        out = {}
        with Connection(self.amqp_uri, connect_timeout=3) as conn:
            for name in queues:
                channel = conn.channel()
                try:
                    _, waiting, consumers = channel.queue_declare(queue=name, passive=True)
                    out[name] = (int(waiting), int(consumers))
                except Exception:  # the queue does not exist (yet): nothing waits in it
                    log.debug("metrics: queue %s not found", name)
                    if name.endswith(PARKED_SUFFIX):  # never parked anything: 0, so alerts see a series
                        out[name] = (0, 0)
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
        return out

    def ready(self) -> dict[str, Any]:
        """The readiness checks: database and broker answer."""
        checks: dict[str, bool] = {}
        db = self.database()
        if db is not None:
            checks["database"] = db.ping()
        if self.amqp_uri:
            try:
                with Connection(self.amqp_uri, connect_timeout=3) as conn:
                    conn.ensure_connection(max_retries=1)
                    checks["broker"] = True
            except Exception:
                checks["broker"] = False
        return checks


class _Collector:
    """Process-wide collector over every running service's ``Source``."""

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # collected lazily; nothing to declare up front

    def collect(self) -> Iterator[Metric]:
        appended = CounterMetricFamily("portal_events_appended", "Events appended to the service's log",
                                       labels=["service"])
        published = CounterMetricFamily("portal_events_published",
                                        "Events the outbox relay has published (its checkpoint)", labels=["service"])
        by_type = CounterMetricFamily("portal_events", "Events in the service's log by type (deliveries by "
                                      "outcome are the router's Delivery* events)", labels=["service", "event_type"])
        backlog = GaugeMetricFamily("portal_outbox_backlog_events", "Committed events not yet published",
                                    labels=["service"])
        age = GaugeMetricFamily("portal_outbox_oldest_age_seconds",
                                "Age of the oldest unpublished event (0 when none)", labels=["service"])
        lag = GaugeMetricFamily("portal_consumer_lag_messages", "Messages waiting in an event handler's queue",
                                labels=["service", "queue"])
        consumers = GaugeMetricFamily("portal_consumers", "Consumers attached to an event handler's queue",
                                      labels=["service", "queue"])
        parked = GaugeMetricFamily("portal_parked_messages", "Event messages parked after their last try, "
                                   "waiting for an operator (portal-ops parked / unpark)", labels=["service", "queue"])
        errors = CounterMetricFamily("portal_metrics_scrape_errors", "Scrape-time readings that failed",
                                     labels=["service"])
        registered: dict[str, tuple[registry.Gauge, GaugeMetricFamily]] = {}
        pools = _pool_figures()
        with self._lock:
            sources = list(self.sources)
        for source in sources:
            svc = source.service
            try:
                gauges = _registered_gauges(svc)
            except Exception as exc:  # a broken registration must not break the scrape
                log.warning("metrics of %s: registration: %s", svc, exc)
                gauges = ()
            for gauge in gauges:
                if gauge.name not in registered:
                    labels = ["service", *gauge.labels] if gauge.per_service else list(gauge.labels)
                    registered[gauge.name] = (gauge, GaugeMetricFamily(gauge.name, gauge.documentation,
                                                                       labels=labels))
            try:
                with eventlet.Timeout(5):
                    readings = source.log_readings()
                    queues = source.queue_readings()
            except BaseException as exc:  # a scrape must answer even when a dependency does not
                log.warning("metrics of %s: %s", svc, exc)
                self.errors[svc] = self.errors.get(svc, 0) + 1
                readings, queues = {}, {}
            if "log" in readings:
                head, checkpoint, oldest = readings["log"]
                appended.add_metric([svc], head)
                published.add_metric([svc], min(checkpoint, head))
                backlog.add_metric([svc], max(head - checkpoint, 0))
                age.add_metric([svc], oldest)
            for event_type, n in sorted(readings.get("by_type", {}).items()):
                by_type.add_metric([svc, event_type], n)
            for queue, (waiting, attached) in queues.items():
                if queue.endswith(PARKED_SUFFIX):
                    parked.add_metric([svc, queue], waiting)
                    continue
                lag.add_metric([svc, queue], waiting)
                consumers.add_metric([svc, queue], attached)
            for reading in readings.get("registered", ()):
                if reading.gauge in registered:
                    gauge, family = registered[reading.gauge]
                    family.add_metric([svc, *reading.labels] if gauge.per_service else list(reading.labels),
                                      reading.value)
            errors.add_metric([svc], self.errors.get(svc, 0))
        yield from (appended, published, by_type, backlog, age, lag, consumers, parked, *pools)
        yield from (family for _, family in registered.values())
        yield errors

    def add(self, source: Source) -> None:
        with self._lock:
            self.sources.append(source)

    def remove(self, source: Source) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self.sources.remove(source)


def _pool_figures() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    """This process's database pools: connections open by state, and each pool's size. A pool
    whose borrowed connections reach its size makes requests wait; one that keeps its floor idle
    has its connections warm (``Database``)."""
    connections = GaugeMetricFamily("portal_db_pool_connections", "Open connections of a database pool, "
                                    "idle or borrowed by a worker", labels=["service", "pool", "state"])
    size = GaugeMetricFamily("portal_db_pool_size", "Connections a database pool opens at most",
                             labels=["service", "pool"])
    figures: dict[tuple[str, str], list[int]] = {}
    for pool in live_pools():
        idle = pool.idle_connections
        summed = figures.setdefault((pool.schema, pool.name), [0, 0, 0])
        summed[0] += idle
        summed[1] += max(pool.open_connections - idle, 0)
        summed[2] += pool.size
    for (service, name), (idle, borrowed, most) in sorted(figures.items()):
        connections.add_metric([service, name, "idle"], idle)
        connections.add_metric([service, name, "borrowed"], borrowed)
        size.add_metric([service, name], most)
    return connections, size


def _registered_gauges(service: str) -> tuple[registry.Gauge, ...]:
    registration = registry.find(service)
    return registration.gauges if registration is not None else ()


COLLECTOR = _Collector()
REGISTRY.register(COLLECTOR)


def _json(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def make_app(source: Source):
    """The WSGI app of a service's metrics port: /metrics, /health, /ready."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            data = generate_latest(REGISTRY)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))])
            return [data]
        if path == "/health":
            return _json(start_response, "200 OK", {"status": "ok", "service": source.service})
        if path == "/ready":
            try:
                with eventlet.Timeout(5):
                    checks = source.ready()
            except BaseException:
                checks = {"timeout": False}
            ok = all(checks.values())
            return _json(start_response, "200 OK" if ok else "503 Service Unavailable",
                         {"status": "ready" if ok else "not_ready", "service": source.service, "checks": checks})
        return _json(start_response, "404 Not Found", {"code": "not_found"})

    return app


class ServiceMetrics(DependencyProvider):
    """Times every worker and serves the service's metrics, health and readiness over HTTP."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.source: Source | None = None
        self._started: dict[str, float] = {}
        self._sock = None
        self._thread = None

    def setup(self) -> None:
        from portal_common.nameko_ext import _dsn

        service = self.container.service_name
        amqp = self.container.config.get("AMQP_URI") or config.amqp_uri(service)
        self.source = Source(service, _dsn(self.container, service), service, amqp, [])

    def start(self) -> None:
        service = self.container.service_name
        self.source.find_queues = self._handler_queues
        wanted = metrics_port(service)
        COLLECTOR.add(self.source)
        if wanted is None:
            return
        host = config.env("METRICS_HOST", "0.0.0.0", service)  # noqa: S104 - scraped from other hosts
        try:
            self._sock = eventlet.listen((host, wanted))
        except OSError as exc:
            log.error("metrics of %s: cannot listen on %s:%s (%s); metrics are not served", service, host,
                      wanted, exc)
            return
        self.port = self._sock.getsockname()[1]
        log.info("metrics of %s on http://%s:%s/metrics", service, host, self.port,
                 extra={"metrics_port": self.port})
        app = make_app(self.source)
        quiet = logging.getLogger("portal_common.metrics.http")

        def serve() -> None:
            with contextlib.suppress(Exception):
                eventlet.wsgi.server(self._sock, app, log=quiet, log_output=False)

        self._thread = eventlet.spawn(serve)

    def stop(self) -> None:
        COLLECTOR.remove(self.source)
        if self._thread is not None:
            self._thread.kill()
            self._thread = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self.source is not None:
            self.source.close()

    def kill(self) -> None:
        self.stop()

    def _handler_queues(self) -> list[str]:
        """The queues of the service's event handlers (known once the entrypoints are set up),
        and their parking queues."""
        handlers = [e for e in self.container.entrypoints
                    if isinstance(e, EventHandler) and getattr(e, "queue", None) is not None]
        parking = sorted({e.parking_queue for e in handlers if hasattr(e, "parking_queue")})
        return [e.queue.name for e in handlers] + parking

    def get_dependency(self, worker_ctx) -> ServiceMetrics:
        return self

    def worker_setup(self, worker_ctx) -> None:
        self._started[worker_ctx.call_id] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        started = self._started.pop(worker_ctx.call_id, None)
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        service = self.container.service_name
        outcome = outcome_of(exc_info)
        seconds = time.perf_counter() - started if started is not None else None
        RPC_CALLS.labels(service, entrypoint.method_name, kind, outcome).inc()
        if seconds is not None:
            RPC_SECONDS.labels(service, entrypoint.method_name, kind).observe(seconds)
        # one line per call (timers only when they fail): with the worker's request id and dossier code
        level = logging.DEBUG if kind == "timer" and outcome == "ok" else logging.INFO
        if outcome == "error":
            level = logging.WARNING
        log.log(level, "%s %s.%s %s", kind, service, entrypoint.method_name, outcome,
                extra={"kind": kind, "method": entrypoint.method_name, "outcome": outcome,
                       "duration_ms": None if seconds is None else round(seconds * 1000, 2)})
