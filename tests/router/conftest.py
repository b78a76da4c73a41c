"""Fixtures of the router tests: a database and RabbitMQ vhost of their own (so a running
``system`` fixture's router never competes for the same queues), the router as a real
``nameko run`` process, and helpers that publish dossier and catalog events the way the
outbox relay does."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer
from nameko.standalone.rpc import ClusterRpcProxy

from deploy.launcher import LocalSystem
from portal_common.db import Database, drop_database, ensure_database
from portal_common.migrations import migrate
from tests.conftest import RUN_ID, private_vhost
from tests.router.broker import PrivateBroker, server_binary
from tests.support.processes import stop

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = "AGENCY_SECRET_TEST"
SECRET = "s3cret-for-tests-only"
# Enough attempts that a callback coming back after two failures is reached before the
# retries run out, even on a loaded machine (base 0.2 s, cap 0.8 s: about 3 s in all).
MAX_ATTEMPTS = 6
ROUTER_ENV = {
    "DELIVERY_TICK": "0.2",
    "DELIVERY_BACKOFF_BASE": "0.2",
    "DELIVERY_BACKOFF_CAP": "0.8",
    "DELIVERY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "DELIVERY_LEASE": "3",
    "CALLBACK_TIMEOUT": "3",
    "OUTBOX_IDLE_WAIT": "0.2",
    "DB_POOL_SIZE": "5",  # the shared PostgreSQL serves every suite of the team: take little of it
    "CATALOG_FALLBACK": "no",  # no catalog on this vhost: agencies come from catalog events
    SECRET_NAME: SECRET,
}


@pytest.fixture(scope="session")
def router_db_url(infrastructure):
    dsn = f"{infrastructure['pg'].rstrip('/')}/portal_test_{RUN_ID}_router"
    ensure_database(dsn)
    migrate(dsn, "router", "services.router", create_database=False)
    yield dsn
    drop_database(dsn)


@pytest.fixture(scope="session")
def router_amqp(infrastructure):
    yield from private_vhost(infrastructure["amqp"], f"portal_test_{RUN_ID}_router", "the router tests")


@pytest.fixture(scope="session")
def router_store(router_db_url):
    db = Database(router_db_url, "router", size=4)
    yield db
    db.close()


class RouterProcess:
    """The router as a ``nameko run`` child process (what ``make up`` runs)."""

    def __init__(self, dsn: str, amqp_uri: str, log_dir: Path, env: dict[str, str] | None = None):
        self.system = LocalSystem(dsn, amqp_uri, 0, log_dir=log_dir, extra_env={**ROUTER_ENV, **(env or {})})
        self.amqp_uri = amqp_uri
        self.proc: subprocess.Popen | None = None

    def start(self) -> RouterProcess:
        self.proc = self.system.start_one("router")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the router exited while starting"
            try:
                with ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=2) as proxy:
                    if proxy.router.health()["status"] == "ok":
                        return self
            except Exception:
                time.sleep(0.3)
                continue
        raise AssertionError("the router did not answer health within 60 s")

    def kill(self) -> None:
        """kill -9: no clean shutdown, no acks, no outcome records for in-flight attempts."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A private RabbitMQ node (``broker.py``) for tests that stop or crash the broker."""
    if server_binary() is None:
        pytest.skip("rabbitmq-server is not installed: no private broker node to restart")
    node = PrivateBroker(tmp_path_factory.mktemp("rabbitmq-node")).start()
    yield node
    node.stop()


def delivery_statuses(db: Database, codes: list[str]) -> dict[str, list[str]]:
    """Each dossier's delivery statuses."""
    with db.transaction() as cur:
        cur.execute("SELECT dossier_code, status FROM deliveries WHERE dossier_code = ANY(%s)", (codes,))
        result: dict[str, list[str]] = {}
        for row in cur.fetchall():
            result.setdefault(row["dossier_code"], []).append(row["status"])
        return result


@pytest.fixture(scope="module")
def router(router_db_url, router_amqp, tmp_path_factory):
    proc = RouterProcess(router_db_url, router_amqp, tmp_path_factory.mktemp("router-logs")).start()
    yield proc
    proc.stop()


@pytest.fixture
def rpc(router):
    with ClusterRpcProxy({"AMQP_URI": router.amqp_uri}, timeout=20) as proxy:
        yield proxy.router


def envelope(event_type: str, data: dict, stream_id: str | None = None, producer: str = "dossier",
             event_id: str | None = None, stream_version: int = 1) -> dict:
    """The body the outbox relay publishes (``RecordedEvent.envelope()``)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "event_id": event_id or str(uuid.uuid4()), "event_type": event_type, "schema_version": 1,
        "stream_id": stream_id or f"{producer}-{data.get('code', 'x')}", "stream_type": producer,
        "stream_version": stream_version, "position": 1, "occurred_at": now, "recorded_at": now,
        "correlation_id": None, "causation_id": None,
        "actor": {"kind": "system", "id": "system", "agency_code": None}, "data": data,
    }


def submitted(code: str, agency: str) -> dict:
    return envelope("DossierSubmitted", {
        "code": code, "owner": {"account_id": "acc-1", "kind": "citizen", "subject": None},
        "applicant": {"full_name": "Nguyễn Văn A"}, "form": {},
        "procedure": {"code": "1.000001", "version": 1, "name": "Khai sinh", "processing_days": 3},
        "agency": {"code": agency, "name": None, "level": None}, "documents": [],
        "submitted_at": dt.datetime.now(dt.UTC).isoformat(), "idempotency_key": None,
    })


def publish(amqp_uri: str, envelopes: list[dict], producer: str = "dossier") -> None:
    """Publish like portal_common.outbox: persistent JSON on ``<producer>.events``, confirmed."""
    exchange = Exchange(f"{producer}.events", type="topic", durable=True, delivery_mode=2)
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        exchange(channel).declare()
        producer_ = Producer(channel, exchange=exchange)
        for env in envelopes:
            producer_.publish(json.dumps(env), routing_key=env["event_type"], content_type="application/json",
                              content_encoding="utf-8", delivery_mode=2, message_id=env["event_id"],
                              retry=False)


def deliveries(db: Database, dossier_code: str) -> list[dict]:
    with db.transaction() as cur:
        cur.execute("SELECT * FROM deliveries WHERE dossier_code = %s ORDER BY created_at", (dossier_code,))
        return cur.fetchall()


def router_events(db: Database, delivery_id: str) -> list[str]:
    with db.transaction() as cur:
        cur.execute("SELECT event_type FROM events WHERE stream_id = %s ORDER BY version",
                    (f"delivery-{delivery_id}",))
        return [r["event_type"] for r in cur.fetchall()]


def run_ops(amqp_uri: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.router.ops", *args, "--amqp-uri", amqp_uri],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
