"""The router killed with SIGKILL mid-delivery, then restarted: every dossier still reaches
its agency exactly once in effect (agency systems drop second copies by delivery id)."""

from __future__ import annotations

import time
import uuid

from deploy.backoffice.inbox import Inbox
from deploy.backoffice.receiver import CallbackReceiver
from tests.router.conftest import SECRET, SECRET_NAME, deliveries, delivery_statuses, publish, submitted
from tests.router.test_delivery import _drain
from tests.support.processes import wait_for


def test_kill_9_mid_callback_delivery_then_restart(router, rpc, router_store):
    agency = f"K{uuid.uuid4().hex[:8].upper()}"
    inbox = Inbox(lambda _d: time.sleep(0.15))  # a slow agency system: deliveries are in flight
    receiver = CallbackReceiver(inbox, SECRET).start()
    try:
        rpc.configure_route(None, {"agency_code": agency, "channel": "http", "endpoint": receiver.url,
                                   "secret_ref": SECRET_NAME})
        codes = [f"C{uuid.uuid4().hex[:12].upper()}" for _ in range(20)]
        publish(router.amqp_uri, [submitted(c, agency) for c in codes])
        wait_for(lambda: len(inbox.seen) >= 4, timeout=30, what="some deliveries")
        router.kill()
        taken_before = len(inbox.seen)
        assert taken_before < len(codes), "the kill came too late to be mid-delivery"
        router.start()
        wait_for(lambda: len(inbox.seen) == len(codes), timeout=60, what="every dossier after restart")
        time.sleep(1.0)
    finally:
        receiver.stop()
    assert sorted(d["dossier_code"] for d in inbox.received) == sorted(codes)
    statuses = delivery_statuses(router_store, codes)
    assert statuses == {c: ["acknowledged"] for c in codes}  # one delivery per dossier, all confirmed


def test_kill_9_mid_amqp_flow_then_restart(router, router_store):
    agency = f"Q{uuid.uuid4().hex[:8].upper()}"
    codes = [f"A{uuid.uuid4().hex[:12].upper()}" for _ in range(300)]
    publish(router.amqp_uri, [submitted(c, agency) for c in codes])
    wait_for(lambda: len(delivery_statuses(router_store, codes)) >= 5, timeout=30, what="routing under way")
    router.kill()
    assert len(delivery_statuses(router_store, codes)) < len(codes), "the kill came too late"
    router.start()
    wait_for(lambda: (s := delivery_statuses(router_store, codes)) and len(s) == len(codes)
             and all(v == ["sent"] for v in s.values()), timeout=60, what="every delivery sent")
    inbox = _drain(router.amqp_uri, agency, len(codes), timeout=30)
    assert sorted(d["dossier_code"] for d in inbox.received) == sorted(codes)
    assert all(len(deliveries(router_store, c)) == 1 for c in codes[:10])
    # copies the broker got twice (published, then killed before the outcome was recorded)
    # carry the same delivery id and were dropped by the inbox
    assert len(inbox.seen) == len(codes)
