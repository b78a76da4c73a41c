"""The liên thông hint: the next procedure of a chain and its agency for the applicant's
place, looked up in the catalog (a stand-in object here) and sent with the submission."""

from __future__ import annotations

import uuid

import pytest
from nameko.exceptions import MethodNotFound

from portal_common.errors import NotFound
from portal_common.eventstore import EventStore
from services.router import catalog_client
from services.router.application import Router
from services.router.catalog_client import CachedCatalog, TtlCache, chain_step
from tests.router.conftest import submitted


class Catalog:
    """The catalog's RPC methods over a small table; counts the calls."""

    def __init__(self):
        self.calls = 0
        self.procedures = {
            "1.001193": {"code": "1.001193", "name": "Đăng ký khai sinh",
                         "next_procedure": {"code": "1.004194", "agency_kind": "commune_police"}},
            "1.004194": {"code": "1.004194", "name": "Đăng ký thường trú", "next_procedure": None},
        }

    def get_procedure(self, code):
        self.calls += 1
        if code not in self.procedures:
            raise NotFound("procedure_not_found", "No procedure has this code.")
        return self.procedures[code]

    def agencies_for(self, code, province=None, ward=None):
        self.calls += 1
        return _communes(ward)

    def agencies_by_ward(self, code, province):
        """The province's table: wards 0-99, each with its own two commune offices."""
        self.calls += 1
        wards = [str(w) for w in range(100)]
        return {"procedure_code": code, "province": int(province), "wards": wards, "everywhere": [],
                "by_ward": {w: _communes(f"{int(w):05d}") for w in wards}}


class OlderCatalog(Catalog):
    """A catalog from before ``agencies_by_ward``."""

    def agencies_by_ward(self, code, province):
        self.calls += 1
        raise MethodNotFound("agencies_by_ward")


def _communes(ward):
    return [{"code": f"W{ward}-UBND", "kind": "commune_people_committee", "name": "UBND", "level": "commune"},
            {"code": f"W{ward}-CA", "kind": "commune_police", "name": "Công an", "level": "commune"}]


def test_a_chained_procedure_names_the_next_procedure_and_the_agency_of_that_kind_there():
    step = chain_step(Catalog(), "1.001193", "1", "00025")
    assert step == {"procedure": {"code": "1.004194", "name": "Đăng ký thường trú"},
                    "agency": {"code": "W00025-CA", "name": "Công an", "level": "commune"}}
    assert chain_step(Catalog(), "1.004194", "1", "00025") is None  # the end of the chain


def test_no_agency_of_the_kind_for_that_place_leaves_the_choice_to_the_agency():
    catalog = Catalog()
    catalog.agencies_for = lambda code, province=None, ward=None: []
    assert chain_step(catalog, "1.001193", "1", "9")["agency"] is None


def test_answers_are_cached_for_their_time_and_failures_are_not():
    now = [0.0]
    cache = TtlCache(60, clock=lambda: now[0])
    calls = []
    assert cache.get("k", lambda: calls.append(1) or "a") == "a"
    assert cache.get("k", lambda: calls.append(1) or "b") == "a"
    now[0] = 61
    assert cache.get("k", lambda: calls.append(1) or "c") == "c"
    with pytest.raises(RuntimeError):
        cache.get("x", lambda: (_ for _ in ()).throw(RuntimeError("down")))
    assert cache.get("x", lambda: "ok") == "ok" and len(calls) == 2


def test_a_procedure_is_asked_for_once_whatever_the_place_and_only_a_chained_one_per_place():
    catalog, now = Catalog(), [0.0]
    cached = CachedCatalog(lambda method: method(catalog), 60, clock=lambda: now[0])
    for ward in range(50):  # the end of a chain, filed from fifty places
        assert chain_step(cached, "1.004194", "1", f"{ward:05d}") is None
    assert catalog.calls == 1
    for ward in range(5):  # a chained procedure, three filings from each of five places
        for _ in range(3):
            assert chain_step(cached, "1.001193", "1", f"{ward:05d}") == \
                chain_step(Catalog(), "1.001193", "1", f"{ward:05d}")
    assert catalog.calls == 1 + 1 + 1  # its own procedure once, the next one kept, its province's table once
    now[0] = 61  # kept for their time only
    assert chain_step(cached, "1.004194", "1", "00001") is None and catalog.calls == 4


def test_a_ward_the_table_does_not_list_and_an_older_catalog_are_asked_per_place():
    catalog = Catalog()
    cached = CachedCatalog(lambda method: method(catalog), 60)
    assert chain_step(cached, "1.001193", "1", "4000")["agency"]["code"] == "W4000-CA"  # not among wards 0-99
    assert catalog.calls == 2 + 1 + 1  # the procedures, the table, then that place alone
    older = OlderCatalog()
    cached = CachedCatalog(lambda method: method(older), 60)
    for ward in ("00001", "00002", "00001"):
        assert chain_step(cached, "1.001193", "1", ward)["agency"]["code"] == f"W{ward}-CA"
    assert older.calls == 2 + 1 + 2  # the procedures, the refused table (kept as none), two places


def test_the_chain_and_the_field_of_a_procedure_are_one_call(monkeypatch):
    catalog = Catalog()
    catalog.procedures["1.004194"]["field"] = {"code": "ho_tich"}
    monkeypatch.setattr(catalog_client, "_call", lambda amqp_uri: lambda method: method(catalog))
    uri = f"amqp://shared-{uuid.uuid4().hex}"  # answers kept per broker: a new one for this test
    field_of, next_step = catalog_client.field_finder(uri), catalog_client.chain_finder(uri)
    assert field_of("1.004194") == "ho_tich"
    assert next_step("1.004194", "1", "00025") is None
    assert catalog.calls == 1


def test_a_failed_catalog_call_is_not_kept():
    catalog = Catalog()
    cached = CachedCatalog(lambda method: method(catalog), 60)
    for _ in range(2):
        with pytest.raises(NotFound):
            chain_step(cached, "9.999999", "1", "00025")
    assert catalog.calls == 2
    catalog.procedures["9.999999"] = {"code": "9.999999", "name": "Mới", "next_procedure": None}
    assert chain_step(cached, "9.999999", "1", "00025") is None and catalog.calls == 3


def test_the_submission_delivery_carries_the_hint_and_a_failing_catalog_gives_none(router_store):
    catalog = Catalog()
    router = Router(router_store, EventStore(router_store), amqp=None, http=None,
                    next_step=lambda code, province, ward: chain_step(catalog, code, province, ward))
    env = submitted(f"G{uuid.uuid4().hex[:10].upper()}", f"C{uuid.uuid4().hex[:6].upper()}")
    env["data"]["procedure"]["code"] = "1.001193"
    env["data"]["applicant"].update({"province": "1", "ward": "00025"})
    hint = router.chain_hint(env)
    assert hint["agency"]["code"] == "W00025-CA"
    with router_store.transaction() as cur:
        [delivery] = router.route(cur, env, hint)
        cur.execute("SELECT body FROM deliveries WHERE delivery_id = %s", (delivery,))
        assert cur.fetchone()["body"]["chain"] == hint
    assert router.chain_hint({**env, "event_type": "DossierSupplemented"}) is None
    broken = Router(router_store, EventStore(router_store), amqp=None, http=None,
                    next_step=lambda *_: (_ for _ in ()).throw(TimeoutError("catalog down")))
    assert broken.chain_hint(env) is None
    assert Router(router_store, EventStore(router_store), amqp=None, http=None).chain_hint(env) is None
