"""Unit tests of the router's pure rules: where an event goes, when it is retried, signing."""

from __future__ import annotations

import random
import uuid

import pytest
from marshmallow import ValidationError

from deploy.backoffice import signature
from services.router.domain import retry, routing, signing
from services.router.schemas import RouteInput


def test_delivery_id_is_stable_per_event_and_agency():
    event = uuid.uuid4()
    assert routing.delivery_id(event, "A") == routing.delivery_id(str(event), "A")
    assert routing.delivery_id(event, "A") != routing.delivery_id(event, "B")
    assert routing.delivery_id(event, "A") != routing.delivery_id(uuid.uuid4(), "A")


def test_successor_chain_is_followed_and_loops_refused():
    successors = {"OLD": "MID", "MID": "NEW"}
    assert routing.resolve_successor("OLD", successors) == "NEW"
    assert routing.resolve_successor("NEW", successors) == "NEW"
    assert routing.resolve_successor("OTHER", successors) == "OTHER"
    with pytest.raises(routing.RoutingError, match="loop"):
        routing.resolve_successor("A", {"A": "B", "B": "A"})


@pytest.mark.parametrize(("event_type", "data", "current", "expected"), [
    ("DossierSubmitted", {"code": "X", "agency": {"code": "A1"}}, None, "A1"),
    ("DossierSubmitted", {"code": "X", "agency_code": "A2"}, None, "A2"),
    ("DossierForwarded", {"code": "X", "from_agency_code": "A1", "to_agency": {"code": "B1"}}, "A1", "B1"),
    ("DossierForwarded", {"code": "X", "to_agency_code": "B2"}, "A1", "B2"),
    ("DossierSupplemented", {"code": "X"}, "A1", "A1"),
    ("DossierWithdrawn", {"code": "X", "agency_code": "C"}, "A1", "C"),
    # named in the event: routed even when it arrives before the submission it follows
    ("FeeExemptionDeclared", {"code": "X", "agency_code": "A1", "fee_id": "le-phi"}, None, "A1"),
    ("FeeExemptionDisputed", {"code": "X", "agency_code": "A1", "fee_id": "le-phi"}, "A1", "A1"),
])
def test_addressed_agency(event_type, data, current, expected):
    assert routing.addressed_agency(event_type, data, current) == expected


@pytest.mark.parametrize(("event_type", "data", "current"), [
    ("DossierSubmitted", {"code": "X"}, None),
    ("DossierSubmitted", {"code": "X", "agency": {"code": "  "}}, None),
    ("DossierSubmitted", {"code": "X", "agency": 42}, None),
    ("DossierSupplemented", {"code": "X"}, None),
])
def test_unroutable_events_are_refused(event_type, data, current):
    with pytest.raises(routing.RoutingError):
        routing.addressed_agency(event_type, data, current)


def test_dossier_code_is_required():
    with pytest.raises(routing.RoutingError):
        routing.dossier_code({"agency": {"code": "A"}})


def test_routing_key_and_queue():
    assert routing.routing_key("H29.01", "DossierSubmitted") == "agency.H29.01.dossier.submitted"
    assert routing.routing_key("H29.01", "DossierForwarded") == "agency.H29.01.dossier.forwarded"
    assert routing.queue_name("H29.01") == "agency.H29.01"


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = retry.RetryPolicy(max_attempts=5, base_s=1.0, cap_s=10.0)
    rand = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (12, 10)]:
        delays = [policy.delay(attempt, rand) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not a fixed step
    assert not policy.exhausted(4)
    assert policy.exhausted(5)


def test_signature_round_trip_with_the_receivers_verifier():
    body = signing.encode_body({"delivery_id": "d", "data": {"name": "Nguyễn"}})
    headers = signing.signed_headers("k", body, "d", now=1_700_000_000.5)
    signature.verify("k", headers[signature.TIMESTAMP_HEADER], headers[signature.SIGNATURE_HEADER], body,
                     now=1_700_000_010)


@pytest.mark.parametrize(("secret", "timestamp", "body", "now", "reason"), [
    ("wrong", None, b'{"a":1}', 1_700_000_000, "does not match"),
    ("k", None, b'{"a":2}', 1_700_000_000, "does not match"),
    ("k", None, b'{"a":1}', 1_700_000_301, "replay window"),
    ("k", None, b'{"a":1}', 1_699_999_600, "replay window"),
    ("k", "17000x", b'{"a":1}', 1_700_000_000, "malformed"),
    ("k", "", b'{"a":1}', 1_700_000_000, "missing"),
])
def test_verification_rejects_tampering_replay_and_garbage(secret, timestamp, body, now, reason):
    good = signing.signed_headers("k", b'{"a":1}', "d", now=1_700_000_000)
    ts = good[signature.TIMESTAMP_HEADER] if timestamp is None else timestamp
    with pytest.raises(signature.SignatureError, match=reason):
        signature.verify(secret, ts, good[signature.SIGNATURE_HEADER], body, now=now)


def test_header_carries_one_signature_outside_a_rotation():
    headers = signing.signed_headers("new", b"{}", "d", now=1_700_000_000)
    assert headers[signature.SIGNATURE_HEADER] == signing.sign("new", 1_700_000_000, b"{}")
    assert "," not in headers[signature.SIGNATURE_HEADER]
    same = signing.signed_headers("new", b"{}", "d", now=1_700_000_000, previous="new")
    assert same[signature.SIGNATURE_HEADER] == headers[signature.SIGNATURE_HEADER]  # no duplicate


def test_header_carries_new_then_previous_signature_during_a_rotation():
    body = b'{"a":1}'
    headers = signing.signed_headers("new", body, "d", now=1_700_000_000, previous="old")
    expected = [signing.sign("new", 1_700_000_000, body), signing.sign("old", 1_700_000_000, body)]
    assert headers[signature.SIGNATURE_HEADER] == ",".join(expected)


@pytest.mark.parametrize("receiver_secret", ["new", "old"])
def test_verifier_accepts_either_secret_during_the_overlap(receiver_secret):
    body = b'{"a":1}'
    headers = signing.signed_headers("new", body, "d", now=1_700_000_000, previous="old")
    signature.verify(receiver_secret, headers[signature.TIMESTAMP_HEADER], headers[signature.SIGNATURE_HEADER],
                     body, now=1_700_000_001)


@pytest.mark.parametrize(("secret", "now", "header", "reason"), [
    ("third", 1_700_000_001, None, "does not match"),
    ("old", 1_700_000_400, None, "replay window"),
    ("old", 1_700_000_001, ",,", "malformed signature header"),
    ("old", 1_700_000_001, ",".join(["sha256=00"] * 9), "malformed signature header"),
    ("old", 1_700_000_001, "sha256=é,sha256=00", "does not match"),
])
def test_verifier_rejects_a_wrong_replayed_or_garbled_multi_signature_header(secret, now, header, reason):
    body = b'{"a":1}'
    headers = signing.signed_headers("new", body, "d", now=1_700_000_000, previous="old")
    with pytest.raises(signature.SignatureError, match=reason):
        signature.verify(secret, headers[signature.TIMESTAMP_HEADER], header or headers[signature.SIGNATURE_HEADER],
                         body, now=now)


@pytest.mark.parametrize(("route", "field"), [
    ({"channel": "amqp"}, "agency_code"),
    ({"agency_code": "A", "channel": "smtp"}, "channel"),
    ({"agency_code": "A", "channel": "http", "secret_ref": "AGENCY_SECRET_A"}, "endpoint"),
    ({"agency_code": "A", "channel": "http", "endpoint": "ftp://x/y", "secret_ref": "AGENCY_SECRET_A"}, "endpoint"),
    ({"agency_code": "A", "channel": "http", "endpoint": "http://x/y"}, "secret_ref"),
    ({"agency_code": "A", "channel": "http", "endpoint": "http://x/y", "secret_ref": "DATABASE_URL"}, "secret_ref"),
    ({"agency_code": "A\x00B", "channel": "amqp"}, "agency_code"),
    ({"agency_code": "A" * 500, "channel": "amqp"}, "agency_code"),
    ({"agency_code": ["A"], "channel": "amqp"}, "agency_code"),
    ({"agency_code": "A", "channel": "amqp", "active": "maybe"}, "active"),
])
def test_route_input_refuses_hostile_values(route, field):
    with pytest.raises(ValidationError) as exc:
        RouteInput().load(route)
    assert field in exc.value.messages


def test_hand_over_reaches_the_target_and_the_origin_after_successors():
    data = {"code": "X", "from_agency_code": "A", "to_agency": {"code": "OLD"}}
    assert routing.recipients("DossierForwarded", data, "A", {"OLD": "NEW"}) == [("NEW", "OLD"), ("A", "A")]
    # a hand-over to the agency's own successor is one delivery, not two
    assert routing.recipients("DossierForwarded", {**data, "from_agency_code": "NEW"}, "NEW", {"OLD": "NEW"}) == \
        [("NEW", "OLD")]
    assert routing.recipients("DossierSubmitted", {"code": "X", "agency": {"code": "OLD"}}, None,
                             {"OLD": "NEW"}) == [("NEW", "OLD")]


@pytest.mark.parametrize(("props", "quorum"), [
    ({"product": "RabbitMQ", "version": "3.10.8"}, True),
    ({"product": b"RabbitMQ", "version": b"4.0.1"}, True),
    ({"product": "RabbitMQ", "version": "3.7.28"}, False),
    ({"product": "LavinMQ", "version": "3.10.0"}, False),
    ({"product": "RabbitMQ", "version": "garbage"}, False),
    ({}, False),
    (None, False),
])
def test_quorum_queues_only_where_the_broker_has_them(props, quorum):
    from types import SimpleNamespace

    from kombu import Exchange

    from deploy.backoffice.consumer import supports_quorum as back_office_choice
    from services.router.channels import agency_queue, supports_quorum

    assert supports_quorum(props) is quorum
    assert back_office_choice(SimpleNamespace(_impl=SimpleNamespace(server_properties=props))) is quorum
    queue = agency_queue(Exchange("agency.deliveries", "topic"), "A", quorum)
    assert queue.queue_arguments == {"x-queue-type": "quorum" if quorum else "classic"}


def test_fee_exemptions_are_follow_up_events_the_agency_receives():
    assert {"FeeExemptionDeclared", "FeeExemptionDisputed"} <= set(routing.ROUTED_EVENTS)
    assert routing.routing_key("A1", "FeeExemptionDisputed") == "agency.A1.dossier.feeexemptiondisputed"
