"""Dossier events handled in batches (``Router.on_dossier_events`` behind
``portal_common.coalesce``), on real PostgreSQL and RabbitMQ: each event of a batch is
delivered once, a poisoned one fails alone (retried, then parked) without failing or losing
the others, a batch that comes again makes no second delivery, and a broker or database
failure in the middle of a batch loses nothing."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pika
import psycopg2
import psycopg2.errors
import pytest

from portal_common.coalesce import ALONE
from portal_common.consumer import claim_many, handle_once
from portal_common.db import Database, DatabaseUnavailable
from portal_common.eventstore import EventStore
from portal_common.redelivery import list_parked, parking_queue_name
from services.router import feed_repository, repository
from services.router.application import Router
from services.router.channels import AmqpChannel
from services.router.domain import routing
from services.router.domain.routing import ROUTED_EVENTS, Route
from services.router.domain.signing import encode_body
from services.router.settings import Settings
from tests.router.conftest import RouterProcess, deliveries, envelope, publish, router_events, submitted
from tests.support.processes import wait_for
from tests.support.round_trips import count_round_trips


def _agency() -> str:
    return f"B{uuid.uuid4().hex[:8].upper()}"


def _codes(n: int) -> list[str]:
    return [f"G{uuid.uuid4().hex[:12].upper()}" for _ in range(n)]


def _queued(amqp_uri: str, agency: str) -> list[str]:
    """The delivery ids waiting in the agency's queue (taken off it)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = conn.channel()
        ids = []
        while True:
            method, props, _body = channel.basic_get(f"agency.{agency}", auto_ack=True)
            if method is None:
                return ids
            ids.append(props.message_id)
    finally:
        conn.close()


def _statuses(db, codes: list[str]) -> dict[str, list[str]]:
    return {code: [d["status"] for d in deliveries(db, code)] for code in codes}


def _claims(db, event_ids: list[str]) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM processed_events WHERE event_id = ANY(%s::uuid[])", (event_ids,))
        return cur.fetchone()["n"]


def _feed_entries(db, event_ids: list[str]) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM agency_feed WHERE event_id = ANY(%s::uuid[])", (event_ids,))
        return cur.fetchone()["n"]


@pytest.fixture
def make_router(router_store, router_amqp):
    """A router on the test database and vhost (``amqp_uri`` to send elsewhere)."""
    made = []

    def make(amqp_uri: str | None = None, **settings) -> Router:
        channel = AmqpChannel(amqp_uri or router_amqp, timeout_s=3.0)
        router = Router(router_store, EventStore(router_store), channel, http=None, settings=Settings(**settings))
        made.append(router)
        return router

    yield make
    for router in made:
        router.amqp.close()


def _alone(router: Router, envelopes: list[dict]) -> list[Exception]:
    """What the coalescer does after a failed batch: each message on its own."""
    failures = []
    for message in envelopes:
        try:
            router.on_dossier_event(message)
        except Exception as exc:  # the entrypoint would retry this message
            failures.append(exc)
    return failures


def test_a_batch_delivers_each_event_once_with_one_routing_and_one_sent_record(router_store, router_amqp,
                                                                               make_router):
    router, agency, codes = make_router(), _agency(), _codes(12)
    envelopes = [submitted(code, agency) for code in codes]
    assert router.on_dossier_events(envelopes) == [None] * len(codes)
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    sent = [d for code in codes for d in deliveries(router_store, code)]
    assert all(d["attempts"] == 1 and d["lease_until"] is None for d in sent)
    assert all(router_events(router_store, str(d["delivery_id"])) == ["DeliveryScheduled", "DeliverySent"]
               for d in sent)
    assert sorted(_queued(router_amqp, agency)) == sorted(str(d["delivery_id"]) for d in sent)
    assert _feed_entries(router_store, [e["event_id"] for e in envelopes]) == len(codes)


def test_a_batch_that_comes_again_makes_no_second_delivery(router_store, router_amqp, make_router):
    router, agency, codes = make_router(), _agency(), _codes(8)
    envelopes = [submitted(code, agency) for code in codes]
    router.on_dossier_events(envelopes)
    # redelivered: the same batch, a copy inside one batch, and each message alone
    router.on_dossier_events(envelopes)
    router.on_dossier_events([envelopes[0], envelopes[0], envelopes[1]])
    assert _alone(router, envelopes) == []
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    assert len(_queued(router_amqp, agency)) == len(codes)
    assert _feed_entries(router_store, [e["event_id"] for e in envelopes]) == len(codes)


def test_a_malformed_event_id_is_sent_alone_and_the_others_are_delivered(router_store, router_amqp, make_router):
    router, agency, codes = make_router(), _agency(), _codes(4)
    envelopes = [submitted(code, agency) for code in codes]
    bad = {**submitted(_codes(1)[0], agency), "event_id": "not-a-uuid"}
    result = router.on_dossier_events([*envelopes[:2], bad, *envelopes[2:]])
    assert result[2] is not None and [r for i, r in enumerate(result) if i != 2] == [None] * 4
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    with pytest.raises(ValueError, match="event_id"):
        router.on_dossier_event(bad)  # alone it fails: the entrypoint retries, then parks it
    assert len(_queued(router_amqp, agency)) == len(codes)


def test_a_poisoned_event_fails_its_batch_then_fails_alone_while_the_others_are_delivered_once(
        router_store, router_amqp, make_router):
    router, agency, codes = make_router(), _agency(), _codes(6)
    envelopes = [submitted(code, agency) for code in codes]
    poisoned = submitted("G\x00POISON", agency)  # PostgreSQL refuses the NUL: no retry will fix it
    batch = [*envelopes[:3], poisoned, *envelopes[3:]]
    with pytest.raises(ValueError):
        router.on_dossier_events(batch)
    # nothing of the failed batch was committed
    assert _claims(router_store, [e["event_id"] for e in batch]) == 0
    assert _statuses(router_store, codes) == {code: [] for code in codes}
    failures = _alone(router, batch)
    assert len(failures) == 1 and isinstance(failures[0], ValueError)
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    assert len(_queued(router_amqp, agency)) == len(codes)


def test_a_broker_failure_in_a_batch_leaves_every_delivery_to_be_retried(router_store, router_amqp, make_router):
    # a channel to a port nobody listens on: the publish of the whole batch fails
    down = make_router("amqp://guest:guest@127.0.0.1:1//", backoff_base_s=0.05, backoff_cap_s=0.1)
    agency, codes = _agency(), _codes(5)
    envelopes = [submitted(code, agency) for code in codes]
    assert down.on_dossier_events(envelopes) == [None] * len(codes)  # routed and committed: acked
    rows = [d for code in codes for d in deliveries(router_store, code)]
    assert len(rows) == len(codes)
    assert all(d["status"] == "pending" and d["attempts"] == 1 and d["last_error"].startswith("amqp:")
               for d in rows)
    assert all(router_events(router_store, str(d["delivery_id"])) == ["DeliveryScheduled", "DeliveryAttemptFailed"]
               for d in rows)
    up = make_router()
    time.sleep(0.2)
    wait_for(lambda: up.run_due() == 0 and _statuses(router_store, codes) == {c: ["sent"] for c in codes},
             what="the failed batch retried by the timer")
    assert sorted(_queued(router_amqp, agency)) == sorted(str(d["delivery_id"]) for d in rows)


def _terminate_on_first(monkeypatch, module, name: str) -> None:
    """Let ``module.name`` kill its own database connection the first time it is called."""
    original = getattr(module, name)
    calls = []

    def dying(cur, *args, **kwargs):
        if not calls:
            calls.append(1)
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return original(cur, *args, **kwargs)

    monkeypatch.setattr(module, name, dying)


def test_a_database_failure_before_the_routing_commit_loses_nothing(router_store, router_amqp, make_router,
                                                                      monkeypatch):
    router, agency, codes = make_router(), _agency(), _codes(5)
    envelopes = [submitted(code, agency) for code in codes]
    _terminate_on_first(monkeypatch, repository, "schedule_deliveries")
    with pytest.raises(DatabaseUnavailable):
        router.on_dossier_events(envelopes)
    assert _claims(router_store, [e["event_id"] for e in envelopes]) == 0
    assert _alone(router, envelopes) == []
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    assert len(_queued(router_amqp, agency)) == len(codes)


def test_the_feed_takes_new_dossiers_holders_from_the_routing_in_its_transaction(router_store, router_amqp,
                                                                                 make_router, monkeypatch):
    """New dossiers' holders come from the routing's plan, not from a read per dossier (nor a
    write of its own) before the routing's writes are sent."""
    router, agency, codes = make_router(), _agency(), _codes(4)
    envelopes = [submitted(code, agency) for code in codes]

    def no_read(cur, code):
        raise AssertionError(f"the holder of {code} was read one by one")

    monkeypatch.setattr(repository, "dossier_holder", no_read)
    assert router.on_dossier_events(envelopes) == [None] * len(codes)
    router.on_dossier_event(submitted(extra := _codes(1)[0], agency))
    assert _feed_entries(router_store, [e["event_id"] for e in envelopes]) == len(codes)
    with router_store.transaction() as cur:
        cur.execute("SELECT code, agency_code FROM dossiers WHERE code = ANY(%s)", ([*codes, extra],))
        assert {r["code"]: r["agency_code"] for r in cur.fetchall()} == dict.fromkeys([*codes, extra], agency)


def test_an_event_alone_and_a_batch_each_take_three_round_trips(router_db_url, router_amqp, monkeypatch):
    """One statement claims the events and reads what routing and feeding them needs
    (``read_batch``), then the holders' updates, the delivery rows with their
    ``DeliveryScheduled`` appends (``schedule_deliveries``), the feed's writes and the commit
    go in one round trip, and the ``DeliverySent`` record in its own: 3 round trips to
    PostgreSQL whether one event comes or ten, the agency having no subscription to run (4
    with the delivery rows inserted in a round trip of their own; 22 and 17 when the routing,
    a re-read of the deliveries and the feed were transactions of their own)."""
    trips = count_round_trips(monkeypatch)
    store = Database(router_db_url, "router", size=1)  # one connection: its statements prepared once
    router = Router(store, EventStore(store), AmqpChannel(router_amqp, timeout_s=3.0), http=None, settings=Settings())
    try:
        agency = _agency()
        router.on_dossier_events([submitted(code, agency) for code in _codes(3)])  # prepares the statements
        router.on_dossier_event(submitted(_codes(1)[0], agency))
        counts = []
        for codes in (_codes(1), _codes(10)):
            trips.clear()
            if len(codes) == 1:
                router.on_dossier_event(submitted(codes[0], agency))
            else:
                assert router.on_dossier_events([submitted(code, agency) for code in codes]) == [None] * 10
            counts.append(len(trips))
            assert _statuses(store, codes) == {code: ["sent"] for code in codes}
        assert counts == [3, 3]
    finally:
        router.amqp.close()
        store.close()


def test_a_delivery_already_there_gets_no_second_event_nor_attempt(router_store, router_amqp, make_router):
    """A delivery row that exists already (its event routed by an earlier version of this code
    whose dedupe record is gone) is left as it is: no ``DeliveryScheduled``, no copy sent; the
    other events of the batch are routed and sent as usual."""
    router, agency, (old_code, new_code) = make_router(), _agency(), _codes(2)
    old, new = submitted(old_code, agency), submitted(new_code, agency)
    old_delivery = str(routing.delivery_id(old["event_id"], agency))
    with router_store.transaction() as cur:
        cur.execute("INSERT INTO deliveries (delivery_id, dossier_code, agency_code, addressed_to, event_id, "
                    "event_type, channel, body, status, attempts, sent_at) VALUES (%s, %s, %s, %s, %s, "
                    "'DossierSubmitted', 'amqp', '{}', 'sent', 1, now())",
                    (old_delivery, old_code, agency, agency, old["event_id"]))
    assert router.on_dossier_events([old, new]) == [None, None]
    [kept] = deliveries(router_store, old_code)
    assert (str(kept["delivery_id"]), kept["status"], kept["attempts"], kept["body"]) == (old_delivery, "sent", 1, {})
    assert router_events(router_store, old_delivery) == []
    [fresh] = deliveries(router_store, new_code)
    assert fresh["status"] == "sent" and fresh["attempts"] == 1
    assert router_events(router_store, str(fresh["delivery_id"])) == ["DeliveryScheduled", "DeliverySent"]
    assert _queued(router_amqp, agency) == [str(fresh["delivery_id"])]


HOSTILE = ("O'Brien \"; DROP TABLE deliveries; --", "back\\slash %s %(x)s $$ $1 ::jsonb",
           "\u202e\ufeff Nguyễn 𝔘 " + "x" * 20_000)


def test_hostile_text_reaches_the_agency_as_sent_and_as_stored(router_store, router_amqp, make_router):
    """The delivery rows travel to the server as one JSON argument of ``schedule_deliveries``:
    quotes, backslashes, placeholders, dollar quotes and long text come out of the agency's
    queue as the event carried them, in the very bytes a redelivery of the stored row sends."""
    router, agency, codes = make_router(), _agency(), _codes(len(HOSTILE))
    envelopes = []
    for code, text in zip(codes, HOSTILE, strict=True):
        env = submitted(code, agency)
        env["data"]["applicant"]["full_name"] = text
        env["data"]["form"] = {text[:40]: text}
        envelopes.append(env)
    assert router.on_dossier_events(envelopes) == [None] * len(codes)
    conn = pika.BlockingConnection(pika.URLParameters(router_amqp))
    try:
        channel, received = conn.channel(), {}
        while (got := channel.basic_get(f"agency.{agency}", auto_ack=True))[0] is not None:
            received[got[1].message_id] = got[2]
    finally:
        conn.close()
    assert len(received) == len(codes)
    for code, text in zip(codes, HOSTILE, strict=True):
        [row] = deliveries(router_store, code)
        body = json.loads(received[str(row["delivery_id"])])
        assert body["data"]["applicant"]["full_name"] == text
        assert body["data"]["form"] == {text[:40]: text}
        assert received[str(row["delivery_id"])] == encode_body(row["body"])  # what a redelivery sends
        assert router_events(router_store, str(row["delivery_id"])) == ["DeliveryScheduled", "DeliverySent"]


def test_scheduling_refuses_rows_events_and_streams_that_do_not_match(router_store):
    for rows, streams, events in (("[{}]", [], []), ("[]", ["delivery-x"], []), ("{}", [], [])):
        with pytest.raises(psycopg2.errors.InvalidParameterValue), router_store.transaction() as cur:
            cur.execute("SELECT schedule_deliveries(%s::jsonb, NULL, %s::text[], %s::text[])", (rows, streams, events))


def _subscribe(cur, agency: str) -> None:
    feed_repository.insert_subscription(cur, {
        "id": str(uuid.uuid4()), "agency_code": agency, "callback_url": "https://127.0.0.1:9/cb",
        "channels": ["dossier"], "filters": {}, "auth_header": None, "position": 0})


def test_one_statement_claims_the_events_and_reads_what_routing_and_feed_need(router_store, monkeypatch):
    named, successor, holder = _agency(), _agency(), _agency()
    held_code, new_code = _codes(2)
    seen, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    with router_store.transaction() as cur:
        repository.upsert_agency(cur, named, None, "dissolved", successor, 1)
        repository.save_route(cur, Route(successor, "http", "https://127.0.0.1:9/in", "AGENCY_SECRET_X"))
        repository.save_route(cur, Route(holder, "amqp"))
        repository.set_dossier_holder(cur, held_code, holder, 3)
        feed_repository.hold(cur, str(uuid.uuid4()), held_code, 5, submitted(held_code, holder))
        for agency in (holder, named):
            _subscribe(cur, agency)
        cur.execute("UPDATE subscriptions SET state = 'paused' WHERE agency_code = %s", (named,))
        claim_many(cur, "x", [seen])
    trips = count_round_trips(monkeypatch)
    with router_store.transaction() as cur:
        reads = repository.read_batch(cur, {"x": [seen, fresh], "y": [seen]}, [held_code, new_code], [named])
        assert trips == ["statement"]
        with psycopg2.connect(router_store.dsn) as other, other.cursor() as probe:  # the row is locked
            probe.execute("SET search_path TO router")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                probe.execute("SELECT 1 FROM dossiers WHERE code = %s FOR UPDATE NOWAIT", (held_code,))
    assert reads.claimed == {"x": {fresh}, "y": {seen}}
    assert reads.codes == {held_code, new_code} and set(reads.dossiers) == {held_code}
    assert reads.dossiers[held_code]["agency_code"] == holder and reads.dossiers[held_code]["stream_version"] == 3
    assert reads.successors[named] == successor
    assert reads.agencies == {named, successor, holder} and reads.routes[named] is None
    assert reads.routes[successor] == Route(successor, "http", "https://127.0.0.1:9/in", "AGENCY_SECRET_X")
    assert reads.routes[holder] == Route(holder, "amqp")
    assert reads.held == {held_code}
    assert reads.subscribed == {holder}  # the named agency's subscription is paused


def test_a_delivery_run_follows_the_feed_only_for_an_agency_with_a_subscription(router_store, make_router,
                                                                             monkeypatch):
    router, quiet, subscribed = make_router(), _agency(), _agency()
    with router_store.transaction() as cur:
        _subscribe(cur, subscribed)
    runs = []
    monkeypatch.setattr(router.subs, "pump", lambda agency=None, limit=50: runs.append(agency) or 0)
    envelopes = [submitted(code, agency) for code, agency in zip(_codes(2), (quiet, subscribed), strict=True)]
    router.on_dossier_events(envelopes)
    assert _feed_entries(router_store, [e["event_id"] for e in envelopes]) == 2  # both fed
    assert runs == [subscribed]  # the other agency's run would find no one to send to


def test_a_database_failure_in_the_feed_rolls_the_routing_back_with_it(router_store, router_amqp, make_router,
                                                                       monkeypatch):
    """Routing and feed share one transaction: a failure in the feed's writes (sent with the
    routing's, before the commit) keeps nothing of the routing either (no dedupe record, no
    delivery, nothing sent), and the fallback then routes, sends and feeds each event once."""
    router, agency, codes = make_router(), _agency(), _codes(5)
    envelopes = [submitted(code, agency) for code in codes]
    _terminate_on_first(monkeypatch, feed_repository, "append_unread")
    with pytest.raises(DatabaseUnavailable):
        router.on_dossier_events(envelopes)
    assert _claims(router_store, [e["event_id"] for e in envelopes]) == 0
    assert _statuses(router_store, codes) == {code: [] for code in codes}  # nothing routed, so nothing sent
    assert _feed_entries(router_store, [e["event_id"] for e in envelopes]) == 0
    assert _alone(router, envelopes) == []
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    assert len(_queued(router_amqp, agency)) == len(codes)
    assert _feed_entries(router_store, [e["event_id"] for e in envelopes]) == len(codes)


# -- the service: batches of messages in flight ------------------------------------------------


@pytest.fixture(scope="module")
def batching_router(router_db_url, router_amqp, tmp_path_factory):
    """The router process, parking a message after two tries."""
    proc = RouterProcess(router_db_url, router_amqp, tmp_path_factory.mktemp("batch-router-logs"),
                         env={"CONSUMER_MAX_ATTEMPTS": "2", "CONSUMER_RETRY_DELAYS": "0.3"}).start()
    yield proc
    proc.stop()


def test_the_service_delivers_a_burst_once_and_parks_the_poisoned_message(batching_router, router_store):
    agency, codes = _agency(), _codes(60)
    envelopes = [submitted(code, agency) for code in codes]
    poisoned = [submitted(f"G\x00POISON{i}", agency) for i in range(3)]  # some land in a batch
    publish(batching_router.amqp_uri, [*envelopes[:20], poisoned[0], *envelopes[20:40], poisoned[1],
                                       *envelopes[40:], poisoned[2], *envelopes[:10]])
    wait_for(lambda: _statuses(router_store, codes) == {code: ["sent"] for code in codes}, timeout=60,
             what="every good message delivered")
    parked = parking_queue_name("router")
    ids = {p["event_id"] for p in poisoned}
    found = wait_for(lambda: (lambda ms: ms if len(ms) == len(ids) else None)(
        [m for m in list_parked(batching_router.amqp_uri, parked) if any(i in m.body for i in ids)]),
        timeout=30, what="the poisoned messages parked")
    assert [m.attempts for m in found] == [2, 2, 2]
    queued = _queued(batching_router.amqp_uri, agency)
    assert len(queued) == len(codes) == len(set(queued))  # each once, the repeated ten too


def _forwarded(code: str, first: str, second: str, version: int) -> dict:
    return envelope("DossierForwarded", {
        "code": code, "from_agency_code": first, "to_agency": {"code": second}, "reason": "liên thông",
        "procedure": {"code": "1", "version": 1, "name": "p", "processing_days": 1},
        "owner": {"account_id": "a", "kind": "citizen"}, "applicant": {}, "documents": []}, stream_version=version)


def _story(code: str, first: str, second: str) -> list[list[dict]]:
    """One dossier's events in the rounds they come in: a receipt before its submission
    (held, then released by it), a hand-over, then a follow-up and an event after a gap
    (held) together."""
    return [[envelope("DossierReceived", {"code": code}, stream_version=2)], [submitted(code, first)],
            [_forwarded(code, first, second, 3)],
            [envelope("DossierWithdrawn", {"code": code, "reason": None}, stream_version=4),
             envelope("DossierSupplemented", {"code": code, "documents": []}, stream_version=6)]]


def _outcome(db, code: str) -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT event_type, agency_code, addressed_to, status, attempts FROM deliveries "
                    "WHERE dossier_code = %s ORDER BY event_type, agency_code", (code,))
        sent = [tuple(r.values()) for r in cur.fetchall()]
        cur.execute("SELECT agency_code, event_type, stream_version, status, national_status_code FROM agency_feed "
                    "WHERE dossier_code = %s ORDER BY position", (code,))
        fed = [tuple(r.values()) for r in cur.fetchall()]
        cur.execute("SELECT agency_code, stream_version, procedure_code, status, fed_version FROM dossiers "
                    "WHERE code = %s", (code,))
        attributes = cur.fetchone()
        cur.execute("SELECT stream_version FROM feed_held WHERE dossier_code = %s ORDER BY 1", (code,))
        held = [r["stream_version"] for r in cur.fetchall()]
    return {"deliveries": sent, "feed": fed, "dossier": attributes, "held": held}


def _step_by_step(router: Router, envelopes: list[dict]) -> None:
    """Each event routed and committed, its deliveries sent, then fed in a transaction of its
    own: the order of the separate steps that one routing-and-feed transaction replaces."""
    for env in envelopes:
        _, ids = handle_once(router.db, "router.dossier", env,
                             lambda cur, e: router.route(cur, e, None, lease=True, commit=True)) \
            if env["event_type"] in ROUTED_EVENTS else (False, [])
        for delivery_id in ids or []:
            router.attempt(delivery_id, leased=True)
        handle_once(router.db, "router.feed", env, lambda cur, e: router.subs.accept(cur, e, None))


def test_a_batch_ends_where_the_same_events_one_by_one_end(router_store, make_router):
    """Three dossiers' events in batches, round by round: the same deliveries, feed entries (in
    the same order), dossier attributes and held events as when they come one at a time, and as
    when each is routed and committed before it is fed (the feed sees the holder the routing
    leaves); a dossier's second event in a batch is sent alone (after the batch, as its worker
    would)."""
    router, first, second = make_router(), _agency(), _agency()
    stepwise, alone, batched = _codes(3), _codes(3), _codes(3)
    stories = {code: _story(code, first, second) for code in stepwise + alone + batched}
    for round_ in range(4):
        _step_by_step(router, [e for code in stepwise for e in stories[code][round_]])
        assert _alone(router, [e for code in alone for e in stories[code][round_]]) == []
        messages = [e for code in batched for e in stories[code][round_]]
        result = router.on_dossier_events(messages)
        assert [r is ALONE for r in result] == ([False, True] * 3 if round_ == 3 else [False] * 3)
        assert _alone(router, [m for m, r in zip(messages, result, strict=True) if r is ALONE]) == []
    expected = _outcome(router_store, alone[0])
    assert expected["held"] == [6] and len(expected["feed"]) == 5 and len(expected["deliveries"]) == 5
    assert all(_outcome(router_store, code) == expected for code in stepwise + alone + batched)


def _routing_transactions(db, codes: list[str]) -> int:
    """How many transactions inserted these dossiers' deliveries (rows of one share its xmin)."""
    with db.transaction() as cur:
        cur.execute("SELECT count(DISTINCT xmin::text) AS n FROM deliveries WHERE dossier_code = ANY(%s)", (codes,))
        return cur.fetchone()["n"]


@pytest.mark.parametrize("linger_s", [0.0, 2.0], ids=["no-linger", "linger"])
def test_with_a_linger_events_a_moment_apart_share_one_routing(router_store, make_router, linger_s):
    """Workers hand the coalescer events 50 ms apart, as a moderate rate brings them: without a
    linger each is routed alone; with one they join the first's batch, one transaction."""
    router, agency, codes = make_router(event_linger_s=linger_s), _agency(), _codes(4)
    threads = []
    for code in codes:
        threads.append(threading.Thread(target=router.dossier_batches.submit, args=(submitted(code, agency),)))
        threads[-1].start()
        time.sleep(0.05)
    for t in threads:
        t.join(20)
    assert _statuses(router_store, codes) == {code: ["sent"] for code in codes}
    if linger_s:
        assert _routing_transactions(router_store, codes) == 1
    else:  # the first is routed at once, alone; a loaded machine may batch some of the rest
        assert _routing_transactions(router_store, codes) >= 2


def test_the_linger_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROUTER_EVENT_BATCH_LINGER_MS", "25")
    assert Settings.from_env().event_linger_s == 0.025
    monkeypatch.delenv("ROUTER_EVENT_BATCH_LINGER_MS")
    assert Settings.from_env().event_linger_s == 0.0
