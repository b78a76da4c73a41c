"""On the whole running system: a dossier filed with the dossier service reaches its agency's
queue through the real outbox relay and router, where the reference back office takes it."""

from __future__ import annotations

import time
import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from deploy.backoffice.consumer import AgencyConsumer
from deploy.backoffice.inbox import Inbox
from portal_common.db import Database
from portal_common.eventstore import EventStore
from services.dossier.application import on_postgres


@pytest.fixture(scope="module")
def dossier_repo(system, migrated_database):
    db = Database(migrated_database, "dossier", size=2)
    yield on_postgres(db, EventStore(db))
    db.close()


def test_submitted_dossier_reaches_the_agency_queue_once(system, amqp_uri, dossier_repo):
    from tests.dossier.conftest import PDF, submit

    agency = f"SYS{uuid.uuid4().hex[:6].upper()}"
    state, _ = submit(dossier_repo, owner=f"acc-{uuid.uuid4().hex[:6]}", agency=agency,
                      content=PDF + uuid.uuid4().bytes)
    inbox = Inbox()
    consumer = AgencyConsumer(amqp_uri, agency, inbox)
    deadline = time.monotonic() + 30
    while not inbox.received and time.monotonic() < deadline:
        consumer.run(until=min(deadline, time.monotonic() + 1))
    consumer.run(until=time.monotonic() + 1)
    assert [(d["dossier_code"], d["event_type"], d["agency_code"]) for d in inbox.received] == \
        [(state.code, "DossierSubmitted", agency)]
    assert inbox.received[0]["data"]["procedure"]["code"]
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as proxy:
        [row] = proxy.router.deliveries_for(state.code)
    assert row["status"] == "sent" and row["delivery_id"] == inbox.received[0]["delivery_id"]


def test_dossier_addressed_to_a_dissolved_agency_reaches_the_end_of_its_successor_chain(
        system, amqp_uri, dossier_repo):
    """Seeded 2025 mergers: P62-SKHDT -> P62-STC -> P51-STC (from catalog events or, when
    the router subscribed after the seed was published, from catalog.resolve_agency)."""
    from tests.dossier.conftest import PDF, submit

    state, _ = submit(dossier_repo, owner=f"acc-{uuid.uuid4().hex[:6]}", agency="P62-SKHDT",
                      content=PDF + uuid.uuid4().bytes)
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as proxy:
        deadline = time.monotonic() + 30
        rows = []
        while not rows and time.monotonic() < deadline:
            rows = proxy.router.deliveries_for(state.code)
            time.sleep(0.2)
    assert [(r["agency_code"], r["addressed_to"]) for r in rows] == [("P51-STC", "P62-SKHDT")]
