"""A handler that fails never loses its message: it is tried again with back-off, parked after
its last try (or at once when the message is bad), and an operator puts it back.

And an RPC whose database connection broke before it committed runs once more; one that
broke while committing reaches the caller as the typed ``DatabaseUnavailable`` (a 503 at the
gateway). Runs ``flaky_service.py`` as a real ``nameko run`` process on this run's vhost.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy

from gateway.http.problems import http_status
from portal_common import ops
from portal_common.entrypoints import TransientClusterRpcProxy, TransientServiceRpcProxy
from portal_common.errors import DatabaseUnavailable
from portal_common.redelivery import RetryPolicy, list_parked, parked_counts, parking_queue_name, unpark
from tests.eventstore.flaky_service import SOURCE
from tests.support.processes import stop, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PARKING = parking_queue_name("flaky")
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def flaky(database_url, amqp_uri, tmp_path_factory):
    """The flaky service running, with short back-off and three tries; yields its tables' pool."""
    from portal_common.db import Database

    schema = f"flaky_{uuid.uuid4().hex[:8]}"
    db = Database(database_url, "public", size=2)
    with db.transaction() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
        cur.execute(f"CREATE TABLE {schema}.tries (key text PRIMARY KEY, n integer NOT NULL)")
        cur.execute(f"CREATE TABLE {schema}.handled (key text NOT NULL)")
    db.close()
    db = Database(database_url, schema, size=2)
    log_path = tmp_path_factory.mktemp("flaky") / "flaky.log"
    env = dict(os.environ, FLAKY_DSN=database_url, FLAKY_SCHEMA=schema, CONSUMER_RETRY_DELAYS="0.2,0.4",
               CONSUMER_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--broker", amqp_uri,
                                 "tests.eventstore.flaky_service"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=env)
    try:
        wait_for(lambda: proc.poll() is not None or _ping(amqp_uri), timeout=60, interval=0.3,
                 what="the flaky service")
        assert proc.poll() is None, log_path.read_text()
        yield db
    finally:
        stop(proc)
        unpark(amqp_uri, PARKING, limit=0)  # nothing to move; the queue is left for the vhost's removal
        db.close()


def _ping(uri: str) -> bool:
    try:
        with ClusterRpcProxy({"AMQP_URI": uri}, timeout=3) as proxy:
            return proxy.flaky.ping() == "pong"
    except Exception:
        return False


def _send(uri: str, **payload) -> str:
    key = uuid.uuid4().hex
    event_dispatcher({"AMQP_URI": uri})(SOURCE, "ProbeHappened", {"key": key, **payload})
    return key


def _tries(db, key: str) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT n FROM tries WHERE key = %s", (key,))
        row = cur.fetchone()
        return row["n"] if row else 0


def _handled(db, key: str) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM handled WHERE key = %s", (key,))
        return cur.fetchone()["n"]


def _parked_keys(uri: str) -> list[str]:
    return [m.body for m in list_parked(uri, PARKING, 100)]


def test_a_message_that_fails_twice_is_handled_on_its_third_try(flaky, amqp_uri):
    key = _send(amqp_uri, fail=2)
    wait_for(lambda: _handled(flaky, key) == 1, timeout=30, what="the third try")
    time.sleep(0.5)  # no copy left behind to run again
    assert _tries(flaky, key) == 3 and _handled(flaky, key) == 1
    assert not any(key in body for body in _parked_keys(amqp_uri))


def test_a_failure_does_not_hold_up_the_messages_behind_it(flaky, amqp_uri):
    stuck = _send(amqp_uri, fail=2)
    fine = _send(amqp_uri)
    wait_for(lambda: _handled(flaky, fine) == 1, timeout=10, what="the message behind a failing one")
    assert _handled(flaky, stuck) == 0  # still waiting for its next try
    wait_for(lambda: _handled(flaky, stuck) == 1, timeout=30, what="the failing message, later")


def test_a_message_that_keeps_failing_is_parked_after_its_last_try_and_an_operator_puts_it_back(flaky, amqp_uri):
    key = _send(amqp_uri, fail=MAX_ATTEMPTS)  # fails every try it gets before the operator steps in
    wait_for(lambda: any(key in b for b in _parked_keys(amqp_uri)), timeout=30, what="the parked message")
    assert _tries(flaky, key) == MAX_ATTEMPTS and _handled(flaky, key) == 0
    [parked] = [m for m in list_parked(amqp_uri, PARKING, 100) if key in m.body]
    assert parked.attempts == MAX_ATTEMPTS and parked.origin == "evt-flaky_probe-ProbeHappened--flaky.on_probe"
    assert "RuntimeError" in parked.error and parked.parked_at
    assert parked_counts(amqp_uri, [PARKING])[PARKING] >= 1
    # looking did not take it
    assert any(key in b for b in _parked_keys(amqp_uri))

    assert unpark(amqp_uri, PARKING) >= 1  # the fourth try succeeds (fail=3)
    wait_for(lambda: _handled(flaky, key) == 1, timeout=30, what="the put-back message")
    assert not any(key in b for b in _parked_keys(amqp_uri))


def test_a_malformed_message_is_parked_at_once(flaky, amqp_uri):
    key = _send(amqp_uri, invalid=True)
    wait_for(lambda: any(key in b for b in _parked_keys(amqp_uri)), timeout=20, what="the parked message")
    assert _tries(flaky, key) == 1
    [parked] = [m for m in list_parked(amqp_uri, PARKING, 100) if key in m.body]
    assert parked.attempts == 1 and "InvalidInput" in parked.error


def test_portal_ops_lists_and_unparks(flaky, amqp_uri, capsys):
    key = _send(amqp_uri, invalid=True)
    wait_for(lambda: any(key in b for b in _parked_keys(amqp_uri)), timeout=20, what="the parked message")
    assert ops.main(["parked", "--service", "flaky", "--amqp-uri", amqp_uri]) == 1
    out = capsys.readouterr().out
    assert "flaky.parked:" in out and "InvalidInput" in out
    assert ops.main(["unpark", "--service", "flaky", "--amqp-uri", amqp_uri]) == 0
    assert "put back" in capsys.readouterr().out
    # still malformed: parked again after one more try
    wait_for(lambda: _tries(flaky, key) == 2 and any(key in b for b in _parked_keys(amqp_uri)), timeout=20,
             what="the message parked again")


def test_an_rpc_that_lost_its_connection_before_commit_runs_once_more(flaky, amqp_uri):
    key = uuid.uuid4().hex
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as proxy:
        assert proxy.flaky.lose_connection(key, 1, True) == 2  # the second run answered
    assert _tries(flaky, key) == 2


def test_an_rpc_that_keeps_failing_or_may_have_committed_answers_503_typed(flaky, amqp_uri):
    twice, unsafe = uuid.uuid4().hex, uuid.uuid4().hex
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as proxy:
        with pytest.raises(DatabaseUnavailable) as err:
            proxy.flaky.lose_connection(twice, 5, True)
        assert http_status(err.value) == 503 and err.value.code == "service_unavailable"
        with pytest.raises(DatabaseUnavailable):
            proxy.flaky.lose_connection(unsafe, 1, False)
    assert _tries(flaky, twice) == 2  # one more run, not more
    assert _tries(flaky, unsafe) == 1  # may have committed: not run again


def test_the_retry_policy_backs_off_and_bounds_the_tries():
    policy = RetryPolicy((1.0, 5.0, 30.0), 4)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4, 9)] == [1.0, 5.0, 30.0, 30.0, 30.0]
    assert [policy.exhausted(n) for n in (1, 3, 4, 5)] == [False, False, True, True]


def test_portal_ops_says_when_nothing_was_ever_parked(amqp_uri, capsys):
    assert ops.main(["parked", "--service", "nobody", "--amqp-uri", amqp_uri]) == 0
    assert "nobody.parked: 0 parked" in capsys.readouterr().out


def test_the_shared_entrypoints_decode_with_the_project_s_codec_and_typed_values_survive(flaky, amqp_uri):
    """The service's RPC consumer installed ``portal_common.jsoncodec`` as it started; a datetime
    and a Decimal, which kombu's encoder marks with their types, still arrive as those types."""
    at = dt.datetime(2026, 12, 7, 20, 30, tzinfo=dt.UTC)
    value = {"at": at, "fee": decimal.Decimal("1.5"), "name": "Hà Nội", "big": 2 ** 70}
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as proxy:
        answer = proxy.flaky.echo_types(value)
    assert answer == {"value": value, "types": ["Decimal", "datetime", "int", "str"],
                      "decoder": "portal_common.jsoncodec.message_loads"}


def _crossing_the_rpc_exchange(amqp_uri: str, call, count: int) -> list[tuple[str, int]]:
    """(routing key, delivery mode) of the first ``count`` messages on nameko's RPC exchange
    while ``call()`` runs."""
    with Connection(amqp_uri) as conn:
        capture = Queue(f"capture-{uuid.uuid4().hex[:8]}", Exchange("nameko-rpc", type="topic", durable=True),
                        routing_key="#", exclusive=True, auto_delete=True)(conn.default_channel)
        capture.declare()
        call()
        seen: list[tuple[str, int]] = []
        deadline = time.monotonic() + 10
        while len(seen) < count and time.monotonic() < deadline:
            message = capture.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            seen.append((message.delivery_info["routing_key"], message.properties.get("delivery_mode")))
    return seen


def test_a_service_s_rpc_requests_and_every_reply_are_transient(flaky, amqp_uri):
    """What crosses the RPC exchange for one call the flaky service passes on to itself
    through the services' proxy: that request and both replies transient (delivery mode 1),
    kept off the broker's disk; the outer request, from nameko's standalone client, is
    persistent (its default), which shows the capture tells the two apart."""
    def call() -> None:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as proxy:
            assert proxy.flaky.ping_through_proxy() == "pong"

    seen = _crossing_the_rpc_exchange(amqp_uri, call, 4)
    requests = {key: mode for key, mode in seen if key.startswith("flaky.")}
    replies = [mode for key, mode in seen if not key.startswith("flaky.")]
    assert requests == {"flaky.ping_through_proxy": 2, "flaky.ping": 1}
    assert replies == [1, 1]


def test_the_project_s_standalone_clients_send_transient_requests(flaky, amqp_uri):
    """The clients outside a container (ops commands, the gateway's key fetch, the router's
    kept catalog clients) send their requests transient, as the services' proxy does."""
    def call() -> None:
        with TransientClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as proxy:
            assert proxy.flaky.ping() == "pong"
            assert proxy["flaky"].ping() == "pong"
        with TransientServiceRpcProxy("flaky", {"AMQP_URI": amqp_uri}, timeout=30) as flaky_proxy:
            assert flaky_proxy.ping() == "pong"

    seen = _crossing_the_rpc_exchange(amqp_uri, call, 6)
    assert [mode for key, mode in seen if key == "flaky.ping"] == [1, 1, 1]
    assert [mode for key, mode in seen if not key.startswith("flaky.")] == [1, 1, 1]
