"""An endpoint that fails for an hour, on a simulated clock: the subscription use cases run
in-process against the router's real tables, the callback is a stand-in that fails until told
otherwise, and the clock moves to each next attempt. Every entry is retried up to the limit
with back-off, then dead-lettered; the failure streak raises the alert; once the endpoint is
back, redelivery from the first dead letter's position completes the gap, each event once."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from portal_common.db import Database
from portal_common.eventstore import EventStore
from services.router.channels import DeliveryFailed
from services.router.delivery_keys import KEY_REF, DeliveryKeys, generate_pem
from services.router.secrets import SecretStore
from services.router.settings import Settings
from services.router.subscriptions import Subscriptions
from tests.router.conftest import envelope


class Endpoint:
    """A callback that fails while ``down``; records what it accepted."""

    def __init__(self):
        self.down = True
        self.attempts = 0
        self.received: list[dict] = []

    def verify(self, url, auth_header):
        pass

    def send(self, url, headers, body):
        self.attempts += 1
        if self.down:
            raise DeliveryFailed("http: status 503")
        self.received.append(json.loads(body))


class Clock:
    def __init__(self):
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def world(router_db_url, tmp_path):
    (tmp_path / KEY_REF).write_text(generate_pem())
    (tmp_path / KEY_REF).chmod(0o600)
    db = Database(router_db_url, "router", size=2)
    endpoint, clock = Endpoint(), Clock()
    settings = Settings(max_attempts=8, backoff_base_s=1.0, backoff_cap_s=300.0)  # the defaults
    subs = Subscriptions(db, EventStore(db), DeliveryKeys(SecretStore(tmp_path)), endpoint, settings,
                         clock=clock, alert_after_s=900)
    yield subs, endpoint, clock
    db.close()


def test_an_hour_of_failures_alerts_dead_letters_and_redelivery_fills_the_gap(world):
    subs, endpoint, clock = world
    agency = f"HOUR-{uuid.uuid4().hex[:6]}"
    sub = subs.create(None, agency, {"callback_url": "https://backoffice.example/hook", "channels": ["dossiers"]})
    code = f"{agency}-261205-0001"
    types = ["DossierSubmitted", "DossierReceived", "DossierProcessingStarted", "SupplementRequested",
             "DossierSupplemented", "DossierResultReady"]
    sent = []
    for version, event_type in enumerate(types, start=1):
        data = {"code": code, "agency_code": agency, "procedure": {"code": "P1", "field": "F"},
                "agency": {"code": agency}, "applicant": {"province": "01"}}
        env = envelope(event_type, data, stream_id=f"dossier-{code}", stream_version=version)
        with subs.db.transaction() as cur:
            subs.accept(cur, env)
        sent.append(env["event_id"])

    start = clock.now
    while clock.now < start + dt.timedelta(hours=1):
        subs.pump(agency)
        state = subs.get(agency, sub["id"])
        due = dt.datetime.fromisoformat(state["next_attempt_at"])
        # sleep until the next attempt (or a while, once there is none)
        clock.now = due if due > clock.now else clock.now + dt.timedelta(seconds=30)

    state = subs.get(agency, sub["id"])
    assert state["dead_lettered"] == len(types), "every entry was given up on within the hour"
    assert endpoint.attempts == 8 * len(types), "each tried up to the limit, then no more"
    dead = subs.dead_letters(sub["id"])
    assert [d["event_id"] for d in dead] == sent and all(d["attempts"] == 8 for d in dead)
    [status] = [s for s in subs.status() if s["id"] == sub["id"]]
    assert status["failing"] and status["failing_for_seconds"] >= 900
    assert endpoint.received == []

    endpoint.down = False
    subs.rewind(None, sub["id"], dead[0]["position"])
    assert subs.pump(agency) == len(types)
    assert [e["id"] for e in endpoint.received] == sent, "the gap is filled, in order, each event once"
    [status] = [s for s in subs.status() if s["id"] == sub["id"]]
    assert not status["failing"] and status["lag_entries"] == 0
    assert subs.pump(agency) == 0 and len(endpoint.received) == len(types)


def test_an_agency_holds_a_bounded_number_of_subscriptions(world):
    from portal_common.errors import Conflict

    subs, _, _ = world
    subs.max_per_agency = 2
    agency = f"CAP-{uuid.uuid4().hex[:6]}"
    body = {"callback_url": "https://backoffice.example/hook", "channels": ["dossiers"]}
    first = subs.create(None, agency, body)
    subs.create(None, agency, body)
    with pytest.raises(Conflict):
        subs.create(None, agency, body)
    subs.end(None, agency, first["id"])
    assert subs.create(None, agency, body)["agency_code"] == agency  # an ended one frees its place
