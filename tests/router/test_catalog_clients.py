"""The router's kept clients of the catalog (``catalog_client.CatalogClients``), against the
running system's catalog on the real broker: one client opened for many calls, kept through
the catalog's own refusals, replaced when it went stale, one per caller at a time."""

from __future__ import annotations

import threading

import pytest

from portal_common.errors import NotFound
from services.router.catalog_client import CatalogClients

pytestmark = pytest.mark.integration

PROCEDURE = "1.001193"


def _name(catalog) -> str:
    return catalog.get_procedure(PROCEDURE)["name"]


def test_one_client_answers_call_after_call(system, amqp_uri):
    clients = CatalogClients(amqp_uri, timeout=10)
    try:
        names = {clients.call(_name) for _ in range(5)}
        assert len(names) == 1 and names.pop()
        assert clients.opened == 1
    finally:
        clients.close()


def test_a_refusal_from_the_catalog_keeps_the_client(system, amqp_uri):
    clients = CatalogClients(amqp_uri, timeout=10)
    try:
        for _ in range(2):
            with pytest.raises(NotFound):
                clients.call(lambda catalog: catalog.get_procedure("9.999999.nothing"))
        assert clients.call(_name) and clients.opened == 1
    finally:
        clients.close()


def test_a_kept_client_gone_stale_is_replaced_and_the_call_still_answered(system, amqp_uri):
    clients = CatalogClients(amqp_uri, timeout=10)
    try:
        expected = clients.call(_name)
        stale, _ = clients._idle[0]
        stale.stop()  # its connection closed while it waited, as a broker restart would
        assert clients.call(_name) == expected
        assert clients.opened == 2 and len(clients._idle) == 1 and clients._idle[0][0] is not stale
    finally:
        clients.close()


def test_callers_at_once_each_get_a_client_and_only_keep_are_kept(system, amqp_uri):
    clients = CatalogClients(amqp_uri, timeout=10, keep=2)
    inside, release, answers = threading.Barrier(5, timeout=20), threading.Event(), []

    def held(catalog):  # four callers hold their clients at the same moment (and this test waits with them)
        name = _name(catalog)
        inside.wait()
        release.wait(20)
        return name

    threads = [threading.Thread(target=lambda: answers.append(clients.call(held))) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        inside.wait()
        assert clients.opened == 4
        release.set()
        for thread in threads:
            thread.join(30)
        assert len(answers) == 4 and len(set(answers)) == 1
        assert len(clients._idle) == 2  # the other two were closed on their way back
    finally:
        release.set()
        clients.close()
    assert clients._idle == []
