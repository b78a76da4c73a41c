"""The load a fault hits: citizens filing dossiers through the gateway, the agencies' back
offices reading their AMQP queues, and an agency actor receiving what arrived.

- ``Client`` threads (``clients`` of them, one registered citizen each) take filing numbers
  from a shared schedule, as fast as they can (or at most ``rate_per_s``), but only numbers
  the runner has released (``release``: the stream comes in bursts, a fault hits each one at
  full load); each filing has its own ``Idempotency-Key``. A connection
  error, a timeout, a 5xx (503 included) or a 429 is retried with the SAME key and body after
  a short pause (``Retry-After`` honoured, capped), bounded in tries and time; a filing is
  *acknowledged* when it got 201/200 with a dossier code. Any other answer is final.
- ``Recorder``: the agencies' side. One consumer per agency queue (``agency.<code>``,
  declared as the router and the reference back office declare it), straight to the broker
  (never through the fault proxy: the observer must not be blinded), reconnecting whenever
  the broker goes away. Every message is recorded (message id, delivery id, event type,
  dossier code, redelivered flag) before it is acknowledged, so copies are counted.
- ``AgencyActor``: receives (``POST /api/v1/agency/dossiers/<code>/receive``) each dossier
  whose DossierSubmitted delivery the recorder saw, retrying like the clients.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

import pika

from deploy.backoffice.consumer import declare, supports_quorum
from tests.support.accounts import register_citizen, sign_in, staff_token
from tests.support.filings import complete_filing

PROCEDURE = "1.001193"  # Đăng ký khai sinh, commune level (seeded; tests/e2e uses it too)
PROVINCE = "1"  # Thành phố Hà Nội (seeded)
RETRYABLE = {429, 500, 502, 503, 504}


def http(url: str, method: str = "GET", body: Any = None, token: str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 20.0) -> tuple[int, Any, dict[str, str]]:
    """One request: ``(status, parsed body, headers)``; status 0 for a connection error or a
    timeout (the body is then the error text)."""
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, raw, got = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        try:
            status, raw, got = err.code, err.read(), dict(err.headers or {})
        except OSError as exc:
            return 0, f"{type(exc).__name__}: {exc}", {}
    except (OSError, urllib.error.URLError, HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}", {}
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw[:200]
    return status, payload, got


def retry_pause(attempt: int, headers: dict[str, str], cap_s: float = 2.0) -> float:
    """Short, growing pause; a server's ``Retry-After`` is honoured up to ``cap_s``."""
    pause = min(cap_s, 0.2 * (2 ** min(attempt, 4)))
    with contextlib.suppress(TypeError, ValueError):
        pause = max(pause, min(cap_s, float(headers.get("Retry-After") or headers.get("retry-after") or 0)))
    return pause


# -- filings -----------------------------------------------------------------------------------

@dataclass
class Filing:
    index: int
    key: str
    agency: str
    owner: str = ""  # the filing citizen's account id
    outcome: str = "not_started"  # acknowledged | refused (a final 4xx) | gave_up | not_started
    code: str | None = None
    final_status: int | None = None
    attempts: int = 0
    errors: Counter = field(default_factory=Counter)  # "503", "conn", ... per failed attempt
    failures: list = field(default_factory=list)  # (monotonic time, "503" / "conn" ...) per failed attempt
    started_at: float | None = None
    finished_at: float | None = None
    detail: str = ""


@dataclass
class Citizen:
    account_id: str
    cccd: str
    password: str
    phone: str
    token: str


class Workload:
    """Everything the stream does; ``start()`` then ``wait()``; results in ``filings``,
    ``recorder`` and ``actor``."""

    def __init__(self, gateway_url: str, amqp_uri: str, filings: int, clients: int, rate_per_s: float | None = None,
                 agencies: int = 2, max_tries: int = 40, max_filing_s: float = 120.0):
        self.gateway_url = gateway_url.rstrip("/")
        self.amqp_uri = amqp_uri
        self.total = filings
        self.clients = clients
        self.rate = rate_per_s
        self.agency_count = agencies
        self.max_tries = max_tries
        self.max_filing_s = max_filing_s
        self.run_id = uuid.uuid4().hex[:8]
        self.filings: list[Filing] = []
        self.citizens: list[Citizen] = []
        self.procedure: dict = {}
        self.agencies: list[dict] = []
        self.recorder: Recorder | None = None
        self.actor: AgencyActor | None = None
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.started = 0  # filings whose first attempt went out
        self.released = filings  # filings the clients may start (``release`` for bursts)
        self.t0 = 0.0
        self.stop_event = threading.Event()

    # -- setup -----------------------------------------------------------------------------

    def prepare(self) -> Workload:
        base = f"{self.gateway_url}/api/v1"
        status, procedure, _ = http(f"{base}/procedures/{PROCEDURE}")
        assert status == 200, f"procedure {PROCEDURE}: {status} {procedure}"
        self.procedure = procedure
        status, body, _ = http(f"{base}/procedures/{PROCEDURE}/agencies?province={PROVINCE}")
        assert status == 200, f"agencies: {status} {body}"
        items = body.get("items", body) if isinstance(body, dict) else body
        wards: set[str] = set()
        for agency in items:
            if agency.get("ward_code") and agency["ward_code"] not in wards:
                wards.add(agency["ward_code"])
                self.agencies.append(agency)
            if len(self.agencies) == self.agency_count:
                break
        assert len(self.agencies) == self.agency_count, f"fewer than {self.agency_count} commune offices"
        for _ in range(self.clients):
            c = register_citizen(self.gateway_url)
            self.citizens.append(Citizen(c["account_id"], c["cccd"], c["password"], c["phone"], c["access_token"]))
        self.filings = [Filing(i, f"chaos-{self.run_id}-{i:05d}", self.agencies[i % len(self.agencies)]["code"])
                        for i in range(self.total)]
        self.recorder = Recorder(self.amqp_uri, [a["code"] for a in self.agencies])
        self.actor = AgencyActor(self.gateway_url, [a["code"] for a in self.agencies])
        self.recorder.on_submitted = self.actor.submit
        return self

    def body(self, filing: Filing) -> dict:
        agency = next(a for a in self.agencies if a["code"] == filing.agency)
        return complete_filing(self.procedure, agency, "Nguyễn Thị Thử",
                               form={"child_name": f"Bé Thử {filing.index}", "birth_date": "2026-11-01"})

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        assert self.recorder and self.actor
        self.recorder.start()
        self.actor.start()
        self.t0 = time.monotonic()
        for n, citizen in enumerate(self.citizens):
            t = threading.Thread(target=self._client, args=(citizen,), name=f"client-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def _client(self, citizen: Citizen) -> None:
        while not self.stop_event.is_set():
            i = next(self._next)
            if i >= self.total:
                return
            while not self.stop_event.is_set() and i >= self.released:
                time.sleep(0.02)
            due = self.t0 + i / self.rate if self.rate else 0.0
            while not self.stop_event.is_set() and time.monotonic() < due:
                time.sleep(min(0.1, due - time.monotonic()))
            if self.stop_event.is_set():
                return
            self._file(citizen, self.filings[i])

    def _file(self, citizen: Citizen, filing: Filing) -> None:
        url = f"{self.gateway_url}/api/v1/dossiers"
        body = self.body(filing)
        filing.owner = citizen.account_id
        filing.started_at = time.monotonic()
        with self._lock:
            self.started += 1
        deadline = filing.started_at + self.max_filing_s
        resigned = False
        while True:
            filing.attempts += 1
            status, reply, headers = http(url, "POST", body, citizen.token, {"Idempotency-Key": filing.key})
            if status in (200, 201) and isinstance(reply, dict) and reply.get("code"):
                filing.outcome, filing.code, filing.final_status = "acknowledged", reply["code"], status
                break
            failure = "conn" if status == 0 else str(status)
            filing.errors[failure] += 1
            filing.failures.append((time.monotonic(), failure))
            if status == 401 and not resigned:  # an expired token: sign in again, once
                resigned = True
                with contextlib.suppress(Exception):
                    citizen.token = sign_in(self.gateway_url, citizen.cccd, citizen.password,
                                            citizen.phone)["access_token"]
                continue
            if status != 0 and status not in RETRYABLE:
                filing.outcome, filing.final_status = "refused", status
                filing.detail = json.dumps(reply, ensure_ascii=False, default=str)[:300]
                break
            if filing.attempts >= self.max_tries or time.monotonic() > deadline or self.stop_event.is_set():
                filing.outcome, filing.final_status = "gave_up", status
                filing.detail = str(reply)[:300]
                break
            time.sleep(retry_pause(filing.attempts, headers))
        filing.finished_at = time.monotonic()

    def hold(self) -> None:
        """Let no filing start until ``release``."""
        self.released = 0

    def release(self, upto: int) -> None:
        """Let the filings numbered below ``upto`` start."""
        self.released = max(self.released, min(upto, self.total))

    def finished(self, upto: int) -> int:
        """How many of the filings numbered below ``upto`` are over (answered or given up)."""
        return sum(1 for f in self.filings[:upto] if f.finished_at is not None)

    def wait(self, timeout: float) -> bool:
        """Until every client finished (True) or ``timeout`` (False: the rest are told to stop)."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if not done:
            self.stop_event.set()
            for t in self._threads:
                t.join(30)
        return done

    def close(self) -> None:
        self.stop_event.set()
        if self.actor:
            self.actor.stop()
        if self.recorder:
            self.recorder.stop()

    # -- progress --------------------------------------------------------------------------

    def acknowledged(self) -> int:
        return sum(1 for f in self.filings if f.outcome == "acknowledged")

    def failures_between(self, start: float, end: float) -> dict[str, int]:
        """Failed attempts (by status, "conn" for no answer) in [start, end) (monotonic)."""
        found: Counter = Counter()
        for f in self.filings:
            found.update(kind for t, kind in f.failures if start <= t < end)
        return dict(found)

    def summary(self) -> dict[str, Any]:
        outcomes = Counter(f.outcome for f in self.filings)
        errors: Counter = Counter()
        for f in self.filings:
            errors.update(f.errors)
        retried = sum(1 for f in self.filings if f.attempts > 1)
        return {"filings": self.total, "clients": self.clients, **dict(outcomes), "retried": retried,
                "errors_by_status": dict(errors)}


# -- the agencies' queues --------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    agency: str
    queue_message_id: str | None
    delivery_id: str | None
    header_delivery_id: str | None
    event_type: str | None
    event_id: str | None
    dossier_code: str | None
    redelivered: bool
    at: float


class Recorder:
    """Consume each agency's queue and remember every message (copies included)."""

    def __init__(self, amqp_uri: str, agencies: list[str]):
        self.amqp_uri = amqp_uri
        self.agencies = agencies
        self.messages: list[Received] = []
        self.malformed = 0
        self.reconnects = 0
        self.on_submitted = None  # callable(agency, dossier_code), set by the workload
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._consuming: set[str] = set()

    def start(self, timeout: float = 30.0) -> None:
        # pika logs every lost connection and refused reconnect at ERROR: while the broker
        # restarts that is expected here, and counted in ``reconnects``
        logging.getLogger("pika").setLevel(logging.CRITICAL)
        for agency in self.agencies:
            t = threading.Thread(target=self._run, args=(agency,), name=f"recorder-{agency}", daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self._consuming) < len(self.agencies):
            time.sleep(0.1)
        assert len(self._consuming) == len(self.agencies), "the recorder could not consume the agency queues"

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def _run(self, agency: str) -> None:
        params = pika.URLParameters(self.amqp_uri + "?heartbeat=10&socket_timeout=5&connection_attempts=1"
                                    "&blocked_connection_timeout=10")
        while not self._stop.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(params)
                channel = connection.channel()
                queue_name = declare(channel, agency, quorum=supports_quorum(connection))
                channel.basic_qos(prefetch_count=100)
                self._consuming.add(agency)
                for method, properties, body in channel.consume(queue_name, inactivity_timeout=0.2):
                    if self._stop.is_set():
                        break
                    if method is None:
                        continue
                    self._record(agency, method, properties, body)
                    channel.basic_ack(method.delivery_tag)
                with contextlib.suppress(Exception):
                    channel.cancel()
            except Exception:  # the broker went away (restart): connect again
                self.reconnects += 1
                time.sleep(0.5)
            finally:
                if connection is not None and connection.is_open:
                    with contextlib.suppress(Exception):
                        connection.close()

    def _record(self, agency: str, method, properties, body: bytes) -> None:
        try:
            delivery = json.loads(body)
            assert isinstance(delivery, dict)
        except (ValueError, AssertionError):
            with self._lock:
                self.malformed += 1
            return
        headers = properties.headers or {}
        entry = Received(agency, properties.message_id, _text(delivery.get("delivery_id")),
                         _text(headers.get("delivery_id")), _text(delivery.get("event_type") or properties.type),
                         _text(delivery.get("event_id")), _text(delivery.get("dossier_code")),
                         bool(method.redelivered), time.monotonic())
        with self._lock:
            self.messages.append(entry)
        if entry.event_type == "DossierSubmitted" and entry.dossier_code and self.on_submitted:
            self.on_submitted(agency, entry.dossier_code)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the agency actor ---------------------------------------------------------------------------

class AgencyActor:
    """Receives each dossier delivered to an agency, once per dossier code."""

    def __init__(self, gateway_url: str, agencies: list[str], workers: int = 2, max_tries: int = 30,
                 max_action_s: float = 90.0):
        self.gateway_url = gateway_url.rstrip("/")
        self.tokens = {a: staff_token(self.gateway_url, "agency_system", a) for a in agencies}
        self.queue: queue.Queue = queue.Queue()
        self.outcomes: dict[str, str] = {}  # code -> received | already_received | refused:<status> | gave_up
        self.attempts = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._busy = 0
        self._stop = threading.Event()
        self.max_tries = max_tries
        self.max_action_s = max_action_s
        self._threads = [threading.Thread(target=self._work, name=f"agency-actor-{n}", daemon=True)
                         for n in range(workers)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def submit(self, agency: str, code: str) -> None:
        with self._lock:
            if code in self._seen:
                return
            self._seen.add(code)
        self.queue.put((agency, code))

    def idle(self) -> bool:
        with self._lock:
            return self.queue.empty() and self._busy == 0

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                agency, code = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                self._busy += 1
            try:
                self.outcomes[code] = self._receive(agency, code)
            finally:
                with self._lock:
                    self._busy -= 1

    def _receive(self, agency: str, code: str) -> str:
        url = f"{self.gateway_url}/api/v1/agency/dossiers/{code}"
        deadline = time.monotonic() + self.max_action_s
        for attempt in itertools.count(1):
            self.attempts += 1
            status, _, headers = http(f"{url}/receive", "POST", {"note": "received (chaos suite)"},
                                          self.tokens[agency])
            if status == 200:
                return "received"
            if status == 409:  # an earlier try may have gone through before its answer was lost
                got, view, _ = http(url, token=self.tokens[agency])
                if got == 200 and isinstance(view, dict) and view.get("status") != "submitted":
                    return "already_received" if attempt > 1 else f"conflict:{view.get('status')}"
            if status != 0 and status not in RETRYABLE and status != 409:
                return f"refused:{status}"
            if attempt >= self.max_tries or time.monotonic() > deadline or self._stop.is_set():
                return "gave_up"
            time.sleep(retry_pause(attempt, headers))
        return "gave_up"
