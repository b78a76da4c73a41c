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
        router.learn_agencies([submitted(f"G{uuid.uuid4().hex[:8]}", agency)])
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
        router.learn_agencies([submitted(f"G{uuid.uuid4().hex[:8]}", agency)])
    assert calls == [agency, agency]
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, agency) is None


def test_a_dissolved_agency_learnt_from_the_catalog_routes_to_its_successor(router_store):
    old, new = _agency(), _agency()
    _router(router_store, lambda code: new).learn_agencies([submitted("G1", old)])
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, old)["status"] == "dissolved"
        assert repository.successors(cur)[old] == new


def test_an_agency_once_found_in_the_local_copy_is_not_looked_up_again(router_store, monkeypatch):
    """The local copy never loses an agency: after one read finds it, further events naming
    it open no transaction; a code not found yet is still looked up each time."""
    known, unknown = _agency(), _agency()
    with router_store.transaction() as cur:
        repository.ensure_agency(cur, known, "active", None)

    def catalog_down(code: str) -> str:
        raise TimeoutError("catalog did not answer")

    looked_up: list[list[str]] = []
    real = repository.known_agencies

    def spied(cur, codes: list[str]) -> set[str]:
        looked_up.append(list(codes))
        return real(cur, codes)

    monkeypatch.setattr(repository, "known_agencies", spied)
    router = _router(router_store, catalog_down)
    for _ in range(3):
        router.learn_agencies([submitted(f"G{uuid.uuid4().hex[:8]}", known)])
    router.learn_agencies([submitted("G2", known), submitted("G3", unknown)])
    router.learn_agencies([submitted("G4", unknown)])
    assert looked_up == [[known], [unknown], [unknown]]
