"""The router as a running service on real RabbitMQ and PostgreSQL: both channels, retries,
dead letters and redelivery, duplicates, successors, hostile RPC input."""

from __future__ import annotations

import json
import time
import uuid

import pika
import pytest

from deploy.backoffice.consumer import AgencyConsumer
from deploy.backoffice.inbox import Inbox
from deploy.backoffice.receiver import CallbackReceiver
from portal_common.errors import Conflict, InvalidInput, NotFound
from tests.router.conftest import (
    MAX_ATTEMPTS,
    SECRET,
    SECRET_NAME,
    deliveries,
    envelope,
    publish,
    router_events,
    run_ops,
    submitted,
)
from tests.support.processes import wait_for


def _agency() -> str:
    return f"T{uuid.uuid4().hex[:8].upper()}"


def _code() -> str:
    return f"G{uuid.uuid4().hex[:12].upper()}"


class Flaky:
    """An agency endpoint that is down for its first ``k`` calls (answers 503)."""

    def __init__(self, k: int):
        self.k = k
        self.calls = 0

    def __call__(self, delivery: dict) -> None:
        self.calls += 1
        if self.calls <= self.k:
            raise RuntimeError("agency system down")


def _drain(amqp_uri: str, agency: str, expect: int, timeout: float = 15.0) -> Inbox:
    inbox = Inbox()
    consumer = AgencyConsumer(amqp_uri, agency, inbox)
    deadline = time.monotonic() + timeout
    while len(inbox.seen) < expect and time.monotonic() < deadline:
        consumer.run(until=min(deadline, time.monotonic() + 1.0))
    # keep listening a little: a second copy would show up as a duplicate
    consumer.run(until=time.monotonic() + 0.5)
    return inbox


def _http_route(rpc, agency: str, url: str) -> None:
    rpc.configure_route({"actor": {"kind": "operator", "id": "t"}},
                        {"agency_code": agency, "channel": "http", "endpoint": url, "secret_ref": SECRET_NAME})


def test_amqp_delivery_to_the_agency_queue(router, rpc, router_store):
    agency, code = _agency(), _code()
    env = submitted(code, agency)
    publish(router.amqp_uri, [env])
    wait_for(lambda: [d for d in deliveries(router_store, code) if d["status"] == "sent"], what="sent")
    inbox = _drain(router.amqp_uri, agency, 1)
    assert len(inbox.received) == 1 and inbox.duplicates == 0
    got = inbox.received[0]
    assert got["dossier_code"] == code and got["event_id"] == env["event_id"]
    assert got["event_type"] == "DossierSubmitted" and got["data"]["applicant"]["full_name"] == "Nguyễn Văn A"
    view = rpc.deliveries_for(code)
    assert [(v["agency_code"], v["channel"], v["status"], v["attempts"]) for v in view] == \
        [(agency, "amqp", "sent", 1)]
    assert router_events(router_store, view[0]["delivery_id"]) == ["DeliveryScheduled", "DeliverySent"]
    # the agency acknowledges what it took from its queue
    assert rpc.acknowledge(view[0]["delivery_id"], agency)["status"] == "acknowledged"
    assert rpc.acknowledge(view[0]["delivery_id"], agency)["status"] == "acknowledged"
    with pytest.raises(NotFound):
        rpc.acknowledge(view[0]["delivery_id"], "SOMEONE-ELSE")
    assert router_events(router_store, view[0]["delivery_id"])[-1] == "DeliveryAcknowledged"


def test_agency_queue_is_a_durable_quorum_queue_with_agency_routing_keys(router, router_store):
    agency, code = _agency(), _code()
    publish(router.amqp_uri, [submitted(code, agency)])
    wait_for(lambda: [d for d in deliveries(router_store, code) if d["status"] == "sent"], what="sent")
    conn = pika.BlockingConnection(pika.URLParameters(router.amqp_uri))
    try:
        channel = conn.channel()
        assert channel.queue_declare(f"agency.{agency}", passive=True).method.message_count == 1
        # redeclaring as a classic queue must fail: the broker holds a quorum queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="x-queue-type"):
            channel.queue_declare(f"agency.{agency}", durable=True, arguments={"x-queue-type": "classic"})
        channel = conn.channel()
        method, props, body = channel.basic_get(f"agency.{agency}", auto_ack=True)
        assert method.routing_key == f"agency.{agency}.dossier.submitted"
        assert props.delivery_mode == 2 and props.message_id == json.loads(body)["delivery_id"]
    finally:
        conn.close()


def test_duplicate_dossier_message_makes_one_delivery(router, router_store):
    agency, code = _agency(), _code()
    env = submitted(code, agency)
    publish(router.amqp_uri, [env, env, env])
    wait_for(lambda: deliveries(router_store, code), what="delivery")
    inbox = _drain(router.amqp_uri, agency, 1)
    time.sleep(0.5)
    assert len(deliveries(router_store, code)) == 1
    assert len(inbox.received) == 1 and inbox.duplicates == 0


def test_dissolved_agency_routes_to_its_successor_and_follow_ups_reach_the_holder(router, router_store):
    old, new, code = _agency(), _agency(), _code()
    publish(router.amqp_uri, [envelope("AgencyDissolved", {
        "code": old, "successor": new, "resolved_successor": new, "dissolved_on": "2026-01-01"},
        producer="catalog")], producer="catalog")
    time.sleep(0.5)  # the router applies catalog events in their own worker
    publish(router.amqp_uri, [submitted(code, old)])
    wait_for(lambda: deliveries(router_store, code), what="delivery")
    publish(router.amqp_uri, [envelope("DossierSupplemented", {"code": code, "documents": [], "note": "ok"},
                                       stream_version=3)])
    wait_for(lambda: len(deliveries(router_store, code)) == 2, what="follow-up delivery")
    rows = deliveries(router_store, code)
    assert [(r["agency_code"], r["addressed_to"]) for r in rows] == [(new, old), (new, new)]
    inbox = _drain(router.amqp_uri, new, 2)
    assert sorted(d["event_type"] for d in inbox.received) == ["DossierSubmitted", "DossierSupplemented"]


def _forwarded(code: str, first: str, second: str) -> dict:
    return envelope("DossierForwarded", {
        "code": code, "from_agency_code": first, "to_agency": {"code": second}, "reason": "liên thông",
        "procedure": {"code": "1", "version": 1, "name": "p", "processing_days": 1},
        "owner": {"account_id": "a", "kind": "citizen"}, "applicant": {}, "documents": []}, stream_version=3)


def test_forwarded_dossier_goes_to_the_target_agency_and_follow_ups_follow_it(router, router_store):
    first, second, code = _agency(), _agency(), _code()
    publish(router.amqp_uri, [submitted(code, first)])
    wait_for(lambda: deliveries(router_store, code), what="first delivery")
    publish(router.amqp_uri, [_forwarded(code, first, second)])
    wait_for(lambda: len(deliveries(router_store, code)) == 3, what="hand-over deliveries")
    publish(router.amqp_uri, [envelope("DossierWithdrawn", {"code": code, "reason": None}, stream_version=4)])
    wait_for(lambda: len(deliveries(router_store, code)) == 4, what="follow-up delivery")
    rows = deliveries(router_store, code)
    assert sorted((r["event_type"], r["agency_code"]) for r in rows) == sorted([
        ("DossierSubmitted", first), ("DossierForwarded", second), ("DossierForwarded", first),
        ("DossierWithdrawn", second)])
    inbox = _drain(router.amqp_uri, second, 2)
    assert [d["event_type"] for d in inbox.received] == ["DossierForwarded", "DossierWithdrawn"]
    assert inbox.received[0]["data"]["from_agency_code"] == first
    # the agency that handed the dossier on sees the chain too
    origin = _drain(router.amqp_uri, first, 2)
    assert [d["event_type"] for d in origin.received] == ["DossierSubmitted", "DossierForwarded"]


def test_hand_over_applied_before_the_older_submission_still_wins(router, router_store):
    """Event types travel on separate queues: a late DossierSubmitted must not move the
    dossier back to the first agency."""
    first, second, code = _agency(), _agency(), _code()
    publish(router.amqp_uri, [_forwarded(code, first, second)])
    wait_for(lambda: len(deliveries(router_store, code)) == 2, what="hand-over deliveries")
    publish(router.amqp_uri, [submitted(code, first)])
    wait_for(lambda: len(deliveries(router_store, code)) == 3, what="submission delivery")
    publish(router.amqp_uri, [envelope("DossierSupplemented", {"code": code, "documents": []}, stream_version=5)])
    wait_for(lambda: len(deliveries(router_store, code)) == 4, what="follow-up delivery")
    rows = deliveries(router_store, code)
    assert [r["agency_code"] for r in rows if r["event_type"] == "DossierSupplemented"] == [second]


def test_signed_callback_survives_an_endpoint_outage_without_loss_or_doubles(router, rpc, router_store):
    agency = _agency()
    flaky = Flaky(k=2)
    inbox = Inbox(flaky)
    receiver = CallbackReceiver(inbox, SECRET).start()
    try:
        _http_route(rpc, agency, receiver.url)
        codes = [_code() for _ in range(5)]
        publish(router.amqp_uri, [submitted(c, agency) for c in codes])
        wait_for(lambda: len(inbox.seen) == 5, timeout=30, what="all five callbacks")
        time.sleep(1.0)  # nothing more should arrive
    finally:
        receiver.stop()
    assert sorted(d["dossier_code"] for d in inbox.received) == sorted(codes)
    assert inbox.duplicates == 0 and receiver.rejected == 0
    rows = [r for c in codes for r in deliveries(router_store, c)]
    assert {r["status"] for r in rows} == {"acknowledged"}
    assert sum(r["attempts"] for r in rows) == 5 + 2  # two failed attempts were retried
    failed = [r for r in rows if r["attempts"] > 1]
    assert failed
    history = router_events(router_store, str(failed[0]["delivery_id"]))
    assert history[0] == "DeliveryScheduled" and "DeliveryAttemptFailed" in history
    assert history[-2:] == ["DeliverySent", "DeliveryAcknowledged"]


def test_callbacks_with_a_wrong_secret_are_rejected_then_dead_lettered_and_redelivered_by_ops(
        router, rpc, router_store):
    agency, code = _agency(), _code()
    inbox = Inbox()
    wrong = CallbackReceiver(inbox, "not-the-shared-secret").start()
    try:
        _http_route(rpc, agency, wrong.url)
        publish(router.amqp_uri, [submitted(code, agency)])
        wait_for(lambda: [d for d in deliveries(router_store, code) if d["status"] == "dead"], timeout=30,
                 what="dead letter")
    finally:
        wrong.stop()
    assert inbox.received == [] and wrong.rejected == MAX_ATTEMPTS
    [row] = deliveries(router_store, code)
    assert row["attempts"] == MAX_ATTEMPTS and "401" in row["last_error"]
    delivery_id = str(row["delivery_id"])
    assert delivery_id in [d["delivery_id"] for d in rpc.list_dead_letters(agency)]
    listed = run_ops(router.amqp_uri, "dead-letters", "--agency", agency)
    assert listed.returncode == 0 and delivery_id in listed.stdout

    right = CallbackReceiver(inbox, SECRET).start()
    try:
        _http_route(rpc, agency, right.url)
        done = run_ops(router.amqp_uri, "redeliver", "--all", "--agency", agency)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: len(inbox.seen) == 1, what="redelivered callback")
    finally:
        right.stop()
    assert inbox.received[0]["delivery_id"] == delivery_id
    [row] = deliveries(router_store, code)
    assert row["status"] == "acknowledged"
    assert rpc.list_dead_letters(agency) == []
    history = router_events(router_store, delivery_id)
    assert history.count("DeliveryAttemptFailed") == MAX_ATTEMPTS - 1 and "DeliveryDeadLettered" in history
    assert history[-3:] == ["DeliveryRedelivered", "DeliverySent", "DeliveryAcknowledged"]
    again = run_ops(router.amqp_uri, "redeliver", delivery_id)
    assert again.returncode == 1 and "delivery_not_dead" in again.stderr


def test_inactive_route_holds_deliveries_until_reactivated(router, rpc, router_store):
    agency, code = _agency(), _code()
    rpc.configure_route(None, {"agency_code": agency, "channel": "amqp", "active": False})
    publish(router.amqp_uri, [submitted(code, agency)])
    wait_for(lambda: (deliveries(router_store, code) or [{}])[0].get("attempts", 0) >= 1, what="held")
    assert deliveries(router_store, code)[0]["status"] == "pending"
    rpc.configure_route(None, {"agency_code": agency, "channel": "amqp", "active": True})
    wait_for(lambda: deliveries(router_store, code)[0]["status"] in ("sent", "dead"), timeout=15, what="sent")
    status = deliveries(router_store, code)[0]["status"]
    if status == "dead":  # attempts ran out while inactive: the operator redelivers
        rpc.redeliver(str(deliveries(router_store, code)[0]["delivery_id"]))
    assert len(_drain(router.amqp_uri, agency, 1).received) == 1
    assert {"agency_code": agency, "channel": "amqp"}.items() <= \
        next(r for r in rpc.list_routes() if r["agency_code"] == agency).items()


@pytest.mark.parametrize("call", [
    lambda r: r.configure_route(None, {"agency_code": "A", "channel": "carrier-pigeon"}),
    lambda r: r.configure_route(None, "not an object"),
    lambda r: r.configure_route(None, {"agency_code": "A", "channel": "http", "endpoint": "http://x/\x00",
                                       "secret_ref": SECRET_NAME}),
    lambda r: r.redeliver("not-a-uuid"),
    lambda r: r.redeliver(None),
    lambda r: r.deliveries_for("x" * 10_000),
    lambda r: r.deliveries_for("G1\x00"),
    lambda r: r.list_dead_letters(None, 10**9),
    lambda r: r.acknowledge("nope", "A"),
    lambda r: r.acknowledge(str(uuid.uuid4()), None),
    lambda r: r.acknowledge(str(uuid.uuid4()), "A\x00"),
    lambda r: r.agency_deliveries(None),
    lambda r: r.agency_deliveries("A" * 500),
    lambda r: r.agency_deliveries("A", "lost"),
    lambda r: r.agency_deliveries("A", None, "x" * 10_000),
    lambda r: r.agency_deliveries("A", None, None, 0),
])
def test_hostile_rpc_input_is_refused(rpc, call):
    with pytest.raises(InvalidInput):
        call(rpc)


def test_unknown_or_live_delivery_cannot_be_redelivered(rpc, router, router_store):
    with pytest.raises(NotFound):
        rpc.redeliver(str(uuid.uuid4()))
    agency, code = _agency(), _code()
    publish(router.amqp_uri, [submitted(code, agency)])
    wait_for(lambda: [d for d in deliveries(router_store, code) if d["status"] == "sent"], what="sent")
    with pytest.raises(Conflict):
        rpc.redeliver(str(deliveries(router_store, code)[0]["delivery_id"]))


def test_unroutable_and_malformed_messages_are_dropped_without_harm(router, rpc, router_store):
    agency, code = _agency(), _code()
    bad = envelope("DossierSubmitted", {"code": _code()})  # no agency
    publish(router.amqp_uri, [bad, envelope("DossierSupplemented", {"code": _code()}),  # unknown dossier
                              {**submitted(_code(), agency), "event_id": "not-a-uuid"}])
    publish(router.amqp_uri, [submitted(code, agency)])
    wait_for(lambda: deliveries(router_store, code), what="the good message after the bad ones")
    assert rpc.health()["status"] == "ok"
    with router_store.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM deliveries WHERE dossier_code = %s", (bad["data"]["code"],))
        assert cur.fetchone()["n"] == 0


def test_ops_commands_change_and_show_the_routing_table_and_deliveries(router, router_store):
    agency, code = _agency(), _code()
    done = run_ops(router.amqp_uri, "route", agency, "--channel", "http", "--endpoint", "http://127.0.0.1:9/x",
                   "--secret-ref", SECRET_NAME, "--inactive")
    assert done.returncode == 0, done.stderr
    listed = run_ops(router.amqp_uri, "routes", "--json")
    [mine] = [r for r in json.loads(listed.stdout) if r["agency_code"] == agency]
    assert (mine["channel"], mine["endpoint"], mine["active"]) == ("http", "http://127.0.0.1:9/x", False)
    assert SECRET not in listed.stdout
    refused = run_ops(router.amqp_uri, "route", agency, "--channel", "http")
    assert refused.returncode == 1 and "invalid_input" in refused.stderr
    assert run_ops(router.amqp_uri, "route", agency, "--channel", "amqp").returncode == 0
    publish(router.amqp_uri, [submitted(code, agency)])
    wait_for(lambda: [d for d in deliveries(router_store, code) if d["status"] == "sent"], what="sent")
    shown = run_ops(router.amqp_uri, "deliveries", code)
    assert shown.returncode == 0 and code in shown.stdout and "sent" in shown.stdout
    with router_store.transaction() as cur:
        cur.execute("SELECT payload FROM events WHERE stream_id = %s ORDER BY version", (f"route-{agency}",))
        payloads = [r["payload"] for r in cur.fetchall()]
    assert [p["channel"] for p in payloads] == ["http", "amqp"]
    assert all(SECRET not in json.dumps(p) for p in payloads)


def test_an_agency_reads_and_acknowledges_only_its_own_deliveries(router, rpc, router_store):
    mine, theirs, code = _agency(), _agency(), _code()
    publish(router.amqp_uri, [submitted(code, mine), submitted(_code(), theirs)])
    wait_for(lambda: [d for d in deliveries(router_store, code) if d["status"] == "sent"], what="sent")
    [row] = rpc.agency_deliveries(mine)
    assert (row["dossier_code"], row["status"], row["event_type"]) == (code, "sent", "DossierSubmitted")
    assert rpc.agency_deliveries(mine, "dead") == [] and rpc.agency_deliveries(mine, None, "OTHER") == []
    assert [r["dossier_code"] for r in rpc.agency_deliveries(mine, "sent", code)] == [code]
    assert code not in [r["dossier_code"] for r in rpc.agency_deliveries(theirs)]
    with pytest.raises(NotFound):
        rpc.acknowledge(row["delivery_id"], theirs)
    assert rpc.agency_deliveries(mine)[0]["status"] == "sent"  # the other agency's ack changed nothing
    assert rpc.acknowledge(row["delivery_id"], mine)["status"] == "acknowledged"
    assert [r["status"] for r in rpc.agency_deliveries(mine)] == ["acknowledged"]


def test_callback_endpoint_not_listening_for_a_while_gets_everything_later_once(router, rpc, router_store):
    """A real outage (nothing listens on the port), not an error answer: the attempts fail,
    are retried with back-off, and once the agency is back each dossier arrives once."""
    import socket

    agency = _agency()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _http_route(rpc, agency, f"http://127.0.0.1:{port}/deliveries")
    codes = [_code() for _ in range(5)]
    publish(router.amqp_uri, [submitted(c, agency) for c in codes])

    def rows() -> list[dict]:
        return [r for c in codes for r in deliveries(router_store, c)]

    wait_for(lambda: len(rows()) == 5 and max(r["attempts"] for r in rows()) >= 2, what="failed attempts")
    assert {r["status"] for r in rows()} == {"pending"}
    inbox = Inbox()
    receiver = CallbackReceiver(inbox, SECRET, port=port).start()
    try:
        wait_for(lambda: len(inbox.seen) == 5, timeout=30, what="every dossier once the agency is back")
        time.sleep(1.0)  # nothing more should arrive
    finally:
        receiver.stop()
    assert sorted(d["dossier_code"] for d in inbox.received) == sorted(codes) and inbox.duplicates == 0
    assert {r["status"] for r in rows()} == {"acknowledged"}
    retried = max(rows(), key=lambda r: r["attempts"])
    history = router_events(router_store, str(retried["delivery_id"]))
    assert history.count("DeliveryAttemptFailed") == retried["attempts"] - 1 >= 1
    assert "econnrefused" in " ".join(
        json.dumps(p).lower() for p in _payloads(router_store, str(retried["delivery_id"])))
    assert history[-2:] == ["DeliverySent", "DeliveryAcknowledged"]


def _payloads(db, delivery_id: str) -> list[dict]:
    with db.transaction() as cur:
        cur.execute("SELECT payload FROM events WHERE stream_id = %s AND event_type = 'DeliveryAttemptFailed' "
                    "ORDER BY version", (f"delivery-{delivery_id}",))
        return [r["payload"] for r in cur.fetchall()]
