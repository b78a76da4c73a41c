"""What the router learns from the catalog about an agency it has never heard of (real
database, the catalog's RPC replaced by a function)."""

from __future__ import annotations

import uuid

from portal_common.errors import NotFound
from portal_common.eventstore import EventStore
from services.router import repository
from services.router.application import Router
from tests.router.conftest import submitted


def _router(db, resolve) -> Router:
    return Router(db, EventStore(db), amqp=None, http=None, resolve_remote=resolve)


def _agency() -> str:
    return f"L{uuid.uuid4().hex[:8].upper()}"


def test_an_agency_unknown_to_the_catalog_is_asked_about_once(router_store):
    calls: list[str] = []

    def resolve(code: str) -> str:
        calls.append(code)
        raise NotFound("agency_not_found", "No agency has this code.")

    agency = _agency()
    router = _router(router_store, resolve)
    for _ in range(3):
        router.learn_agency(submitted(f"G{uuid.uuid4().hex[:8]}", agency))
    assert calls == [agency]
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, agency)["status"] == "active"


def test_an_unavailable_catalog_is_asked_again_next_time(router_store):
    calls: list[str] = []

    def resolve(code: str) -> str:
        calls.append(code)
        raise TimeoutError("catalog did not answer")

    agency = _agency()
    router = _router(router_store, resolve)
    for _ in range(2):
        router.learn_agency(submitted(f"G{uuid.uuid4().hex[:8]}", agency))
    assert calls == [agency, agency]
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, agency) is None


def test_a_dissolved_agency_learnt_from_the_catalog_routes_to_its_successor(router_store):
    old, new = _agency(), _agency()
    _router(router_store, lambda code: new).learn_agency(submitted("G1", old))
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, old)["status"] == "dissolved"
        assert repository.successors(cur)[old] == new
