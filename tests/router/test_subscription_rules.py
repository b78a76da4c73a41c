"""The pure rules of subscriptions (no broker, no connection): national status codes, the
callback address check, filters, channels, CloudEvent attributes, and how long a failing
endpoint is retried on a simulated clock."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from portal_common.contracts.dossier import NATIONAL_STATUS_CODES, STATUSES, national_status_code
from services.router.callbacks import CallbackPolicy, CallbackRefused
from services.router.domain import subscriptions as rules
from services.router.domain.retry import RetryPolicy, next_attempt_at


def test_every_dossier_status_has_a_national_code():
    for status in (*STATUSES, "awaiting_payment", "payment_expired"):
        assert status in NATIONAL_STATUS_CODES, status
        assert 1 <= NATIONAL_STATUS_CODES[status] <= 10
    assert set(NATIONAL_STATUS_CODES.values()) >= {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
    assert national_status_code("submitted") == 1 and national_status_code("returned") == 10
    assert national_status_code("withdrawn") == 7 and national_status_code("awaiting_payment") == 6
    assert national_status_code(None) is None and national_status_code("nonsense") is None
    for event_type, status in rules.STATUS_AFTER.items():
        assert status in NATIONAL_STATUS_CODES, event_type


def test_the_status_after_an_event_is_the_producers_when_stated():
    paused = {"event_type": "DossierPaused", "attributes": {"dossier_status": "supplemented",
                                                            "national_status_code": 4}}
    assert rules.status_after("DossierPaused", "processing", paused) == "supplemented"
    assert rules.status_after("DossierPaused", "processing", {"event_type": "DossierPaused"}) == "processing"
    assert rules.status_after("DossierReceived", None, {}) == "received"  # events from before attributes
    for junk in ({"dossier_status": "hacked"}, {"dossier_status": 4}, ["submitted"], "submitted", None):
        assert rules.status_after("DossierReceived", "submitted", {"attributes": junk}) == "received"


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback address"), ("127.8.9.10", "loopback address"), ("::1", "loopback address"),
    ("::ffff:127.0.0.1", "loopback address"), ("169.254.169.254", "link-local address"),
    ("fe80::1", "link-local address"), ("10.1.2.3", "private address"), ("172.16.0.9", "private address"),
    ("192.168.1.1", "private address"), ("::ffff:10.0.0.1", "private address"), ("fd00::1", "private address"),
    ("100.64.0.1", "private address"), ("224.0.0.1", "multicast address"), ("0.0.0.0", "reserved address"),
    ("240.0.0.1", "reserved address"), ("not-an-ip", "not an IP address"),
])
def test_refused_addresses(address, reason):
    assert rules.refused_address(address, allow_loopback=False, allow_private=False) == reason


def test_allowed_addresses_and_operator_switches():
    assert rules.refused_address("203.0.113.7", False, False) is not None  # documentation range: not global
    assert rules.refused_address("8.8.8.8", False, False) is None
    assert rules.refused_address("2001:4860:4860::8888", False, False) is None
    assert rules.refused_address("127.0.0.1", True, False) is None
    assert rules.refused_address("10.0.0.1", True, False) == "private address"
    assert rules.refused_address("10.0.0.1", False, True) is None
    assert rules.refused_address("169.254.169.254", True, True) == "link-local address"  # never


def _policy(answers: dict[str, list[str]], **kw) -> CallbackPolicy:
    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]
    return CallbackPolicy(resolve=resolve, **kw)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "gopher://example.org/", "ftp://example.org/x", "https://", "not a url",
    "https://user:pw@hooks.example.org/x",  # credentials go in auth_header
    "http://hooks.example.org/x",  # plain http outside local development
    "https://loopback.example.org/x", "https://mapped.example.org/x", "https://metadata.example.org/x",
    "https://mixed.example.org/x", "https://unknown.example.org/x", "https://[::1]/x", "https://127.0.0.1/x",
    "https://10.0.0.7:8443/x", "https://169.254.169.254/latest/meta-data",
])
def test_callback_urls_refused_without_connecting(url):
    policy = _policy({"hooks.example.org": ["8.8.8.8"], "loopback.example.org": ["127.0.0.1"],
                      "mapped.example.org": ["::ffff:127.0.0.1"], "metadata.example.org": ["169.254.169.254"],
                      "mixed.example.org": ["8.8.4.4", "10.0.0.1"], "::1": ["::1"], "127.0.0.1": ["127.0.0.1"],
                      "10.0.0.7": ["10.0.0.7"], "169.254.169.254": ["169.254.169.254"]})
    with pytest.raises(CallbackRefused):
        policy.check(url)


def test_callback_urls_accepted():
    _policy({"hooks.example.org": ["8.8.8.8"]}).check("https://hooks.example.org/portal")
    local = _policy({"127.0.0.1": ["127.0.0.1"], "localhost": ["127.0.0.1", "::1"]}, allow_loopback=True)
    local.check("http://127.0.0.1:9000/hook")  # local development: http to loopback
    local.check("http://localhost:9000/hook")
    with pytest.raises(CallbackRefused):
        local.check("http://10.0.0.1/hook")


def test_filters_are_normalised_and_checked():
    assert rules.normalize_filters({}) == {} and rules.normalize_filters(None) == {}
    assert rules.normalize_filters({"status": "received", "field": ["b", "a", "a"], "province_code": []}) == \
        {"status": ["received"], "field": ["a", "b"]}
    assert rules.normalize_filters({"province_code": 1}) == {"province_code": ["1"]}
    for bad in ({"colour": "red"}, {"status": [{"x": 1}]}, {"status": True}, {"status": ["x" * 101]},
                {"status": ["a\nb"]}, {"status": list(map(str, range(101)))}, ["status"]):
        with pytest.raises(rules.FilterError):
            rules.normalize_filters(bad)
    assert rules.normalize_channels(["documents", "dossiers", "dossiers"]) == ["documents", "dossiers"]
    for bad in ([], ["gossip"], "dossiers", None):
        with pytest.raises(rules.FilterError):
            rules.normalize_channels(bad)


def test_matching_needs_a_shared_channel_and_every_filter():
    entry = {"channels": ["dossiers", "documents"], "procedure_code": "P1", "field": "F", "status": "received",
             "event_type": "DossierReceived", "province_code": "01"}
    assert rules.matches(["dossiers"], {}, entry)
    assert rules.matches(["documents"], {"procedure_code": ["P1", "P2"], "province_code": ["01"]}, entry)
    assert not rules.matches(["payments"], {}, entry)
    assert not rules.matches(["dossiers"], {"procedure_code": ["P2"]}, entry)
    assert not rules.matches(["dossiers"], {"field": ["F"], "status": ["processing"]}, entry)
    assert not rules.matches(["dossiers"], {"field": ["F"]}, {**entry, "field": None})


def test_channels_of_events():
    assert rules.channels_of("DossierReceived") == ["dossiers"]
    assert rules.channels_of("DossierResultReady") == ["dossiers", "documents"]
    assert rules.channels_of("DossierPaymentRequested") == ["payments"]
    assert rules.channels_of("DossierReceiptAttached") == ["payments", "documents"]
    assert rules.channels_of("PaymentSucceeded") == ["payments"]
    assert rules.channels_of("FeeExemptionDeclared") == ["payments"]
    assert rules.channels_of("FeeExemptionDisputed") == ["payments"]


def test_fee_exemption_events_leave_the_status_as_the_producer_states_it():
    for event_type in ("FeeExemptionDeclared", "FeeExemptionDisputed"):
        assert rules.status_after(event_type, "submitted") == "submitted"
        assert rules.status_after(event_type, "processing", {"attributes": {"dossier_status": "processing"}}) \
            == "processing"


def test_cloudevent_attributes():
    env = {"event_id": "0c3b4a52-8f7c-4b1e-9d59-0d8a5c1e2f11", "event_type": "DossierReceived",
           "schema_version": 1, "stream_version": 2, "occurred_at": "2026-12-05T01:02:03+00:00"}
    attrs = rules.cloudevent_attributes(env, "AG", {"dossier_code": "AG-261205-0001", "status": "received",
                                                   "procedure_code": "P1", "field": None}, "https://portal.example/")
    assert attrs["id"] == env["event_id"] and attrs["specversion"] == "1.0"
    assert attrs["type"] == "vn.gov.portal.DossierReceived.v1"
    assert attrs["dataschema"] == "https://portal.example/asyncapi.json#/components/messages/DossierReceived.v1"
    assert attrs["nationalstatuscode"] == 2 and attrs["dossierstatus"] == "received"
    assert attrs["subject"] == "AG-261205-0001" and "field" not in attrs
    assert all(k.isalnum() and k.islower() for k in attrs), "CloudEvents attribute names"


def test_an_endpoint_failing_for_an_hour_is_given_up_on_within_it():
    """Simulated clock: each entry is tried ``max_attempts`` times with capped back-off; with
    the defaults an entry is dead-lettered long before an hour, and the alert threshold
    (SUBSCRIPTION_ALERT_AFTER, 15 minutes by default) falls inside that hour."""
    policy = RetryPolicy()  # the defaults of Settings: 8 attempts, 1 s base, 300 s cap
    rand = random.Random(7)
    start = now = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)
    dead_letters, attempts = 0, 0
    while now < start + dt.timedelta(hours=1):
        attempts += 1
        if policy.exhausted(attempts):
            dead_letters += 1
            attempts = 0
            continue
        now = next_attempt_at(now, attempts, policy, rand)
    assert dead_letters >= 2, "an hour of failures dead-letters entries rather than retrying for ever"
    worst = sum(min(policy.cap_s, policy.base_s * 2 ** (n - 1)) for n in range(1, policy.max_attempts))
    assert worst < 15 * 60 + 600
