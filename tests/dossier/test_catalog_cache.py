"""The dossier service's catalog cache, in plain Python: expiry, size bound, invalidation by
the catalog's events, no stale store after an invalidation, and the cache turned off."""

from __future__ import annotations

import pytest
from nameko.exceptions import MethodNotFound

from portal_common.errors import NotFound
from services.dossier.catalog_cache import CachedCatalog, CatalogCache, TtlCache, invalidate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCatalog:
    """Counts the RPCs; answers from dicts the test changes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.procedures = {"P1": {"code": "P1", "version": 1, "status": "published", "required_documents": []},
                           "P2": {"code": "P2", "version": 7, "status": "published", "required_documents": []}}
        self.agencies = [{"code": "A1", "name": "Sở A"}]
        self.during_call = None
        #: agencies_by_ward's answers by (procedure, province); None: a catalog from before that call
        self.tables: dict[tuple, dict] | None = None

    def get_procedure(self, code, version=None, include_draft=False):
        self.calls.append(("get_procedure", code, version, include_draft))
        if self.during_call:
            self.during_call()
        if code not in self.procedures:
            raise NotFound("procedure_not_found", "no such procedure")
        return dict(self.procedures[code])

    def agencies_for(self, procedure_code, province=None, ward=None):
        self.calls.append(("agencies_for", procedure_code, province, ward))
        return [dict(a) for a in self.agencies]

    def agencies_by_ward(self, procedure_code, province):
        if self.tables is None:
            raise MethodNotFound("agencies_by_ward")
        self.calls.append(("agencies_by_ward", procedure_code, province))
        return self.tables[(procedure_code, province)]

    def resolve_agency(self, code):
        self.calls.append(("resolve_agency", code))
        return {"code": code}


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = TtlCache(ttl=60, max_size=10, clock=clock)
    cache.put("k", 1)
    clock.now += 59.9
    assert cache.get("k") == 1
    clock.now += 0.2
    assert cache.get("k", "gone") == "gone" and len(cache) == 0


def test_size_is_bounded_least_recently_used_first():
    cache = TtlCache(ttl=60, max_size=3, clock=Clock())
    for k in "abc":
        cache.put(k, k.upper())
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("d", "D")
    assert len(cache) == 3
    assert cache.get("b") is None and [cache.get(k) for k in "acd"] == ["A", "C", "D"]
    with pytest.raises(ValueError):
        TtlCache(ttl=1, max_size=0)


def test_a_store_from_before_an_invalidation_is_dropped():
    cache = TtlCache(ttl=60, max_size=10, clock=Clock())
    generation = cache.generation
    cache.invalidate()
    assert cache.put("k", "old", generation) is False and cache.get("k") is None
    assert cache.put("k", "new", cache.generation) is True and cache.get("k") == "new"


def test_procedure_and_agencies_are_asked_once_then_answered_from_the_cache():
    fake = FakeCatalog()
    catalog = CachedCatalog(fake, TtlCache(60, 100, clock=Clock()))
    for _ in range(3):
        assert catalog.get_procedure("P1")["version"] == 1
        assert catalog.agencies_for("P1", province="01", ward="00001") == fake.agencies
    assert [c[0] for c in fake.calls] == ["get_procedure", "agencies_for"]
    catalog.agencies_for("P1", province=1, ward=2)
    catalog.agencies_for("P1", province="1", ward="2")  # same area as text: same entry
    catalog.agencies_for("P1", province="02")
    assert [c[0] for c in fake.calls].count("agencies_for") == 3


def test_callers_get_copies_and_other_calls_pass_through():
    fake = FakeCatalog()
    catalog = CachedCatalog(fake, TtlCache(60, 100, clock=Clock()))
    catalog.get_procedure("P1")["version"] = 99
    assert catalog.get_procedure("P1")["version"] == 1
    assert catalog.get_procedure("P1", version=1)["version"] == 1  # a given version: not cached
    catalog.resolve_agency("A0")
    assert [c[0] for c in fake.calls] == ["get_procedure", "get_procedure", "resolve_agency"]


def test_errors_are_not_cached():
    fake = FakeCatalog()
    catalog = CachedCatalog(fake, TtlCache(60, 100, clock=Clock()))
    for _ in range(2):
        with pytest.raises(NotFound):
            catalog.get_procedure("P9")
    fake.procedures["P9"] = {"code": "P9", "version": 1, "status": "published"}
    assert catalog.get_procedure("P9")["version"] == 1
    assert len(fake.calls) == 3


def test_procedure_events_drop_that_procedure_only_and_agency_events_every_agency_list():
    fake = FakeCatalog()
    cache = TtlCache(60, 100, clock=Clock())
    catalog = CachedCatalog(fake, cache)
    def fill():
        for code in ("P1", "P2"):
            catalog.get_procedure(code)
            catalog.agencies_for(code, province="01")

    fill()
    fake.procedures["P1"] = dict(fake.procedures["P1"], version=2)
    assert invalidate(cache, "ProcedureAmended", {"data": {"code": "P1", "version": 2}}) == 2
    assert catalog.get_procedure("P1")["version"] == 2 and catalog.get_procedure("P2")["version"] == 7
    fill()
    fake.calls.clear()
    fake.agencies = []  # dissolved
    assert invalidate(cache, "AgencyDissolved", {"data": {"code": "A1", "successor": "A2"}}) == 2
    assert catalog.agencies_for("P1", province="01") == [] and catalog.agencies_for("P2", province="01") == []
    catalog.get_procedure("P1"), catalog.get_procedure("P2")
    assert [c[0] for c in fake.calls] == ["agencies_for", "agencies_for"]
    assert invalidate(cache, "ProcedureWithdrawn", {"no": "data"}) == 4  # no code: everything goes
    assert len(cache) == 0


def test_an_event_during_a_look_up_keeps_its_answer_out_of_the_cache():
    fake = FakeCatalog()
    cache = TtlCache(60, 100, clock=Clock())
    catalog = CachedCatalog(fake, cache)
    # the withdrawal's event arrives while the catalog is still answering with the old version
    fake.during_call = lambda: invalidate(cache, "ProcedureWithdrawn", {"data": {"code": "P1"}})
    assert catalog.get_procedure("P1")["version"] == 1
    fake.during_call = None
    catalog.get_procedure("P1")
    assert len([c for c in fake.calls if c[0] == "get_procedure"]) == 2


def test_the_provider_reads_its_settings_and_ttl_zero_turns_the_cache_off(monkeypatch):
    proxy = FakeCatalog()
    monkeypatch.setenv("DOSSIER_CATALOG_CACHE_TTL", "0")
    off = CatalogCache()
    off.setup()
    assert off.wrap(proxy) is proxy
    off.on_event("ProcedureWithdrawn", {"data": {"code": "P1"}})  # nothing to drop, no error
    monkeypatch.setenv("DOSSIER_CATALOG_CACHE_TTL", "5")
    monkeypatch.setenv("DOSSIER_CATALOG_CACHE_SIZE", "2")
    on = CatalogCache()
    on.setup()
    assert on.get_dependency(None) is on
    assert (on.cache.ttl, on.cache.max_size) == (5.0, 2)
    catalog = on.wrap(proxy)
    catalog.get_procedure("P1")
    on.on_event("ProcedureWithdrawn", {"data": {"code": "P1"}})
    catalog.get_procedure("P1")
    assert len(proxy.calls) == 2


def test_a_broker_reconnection_drops_everything(monkeypatch):
    """Catalog events sent while the connection was down never arrive: nothing cached before
    it can be trusted."""
    monkeypatch.setenv("DOSSIER_CATALOG_CACHE_TTL", "60")
    proxy, provider = FakeCatalog(), CatalogCache()
    provider.setup()
    catalog = provider.wrap(proxy)
    catalog.get_procedure("P1")
    catalog.agencies_for("P1", province="51")
    catalog.get_procedure("P1")
    assert len(proxy.calls) == 2
    provider.on_reconnect()
    catalog.get_procedure("P1")
    catalog.agencies_for("P1", province="51")
    assert len(proxy.calls) == 4


def _hanoi(fake: FakeCatalog) -> None:
    fake.tables = {("P1", "01"): {"procedure_code": "P1", "province": 1, "wards": ["4", "7", "8"],
                                  "everywhere": [{"code": "P01-STP"}], "by_ward": {"7": [{"code": "W00007-UBND"}]}},
                   ("P2", "01"): {"procedure_code": "P2", "province": 1, "wards": ["4", "7", "8"],
                                  "everywhere": [{"code": "P01-SYT"}], "by_ward": {}}}


def test_one_table_answers_every_ward_of_a_province():
    fake = FakeCatalog()
    _hanoi(fake)
    catalog = CachedCatalog(fake, TtlCache(60, 100, clock=Clock()))
    assert catalog.agencies_for("P1", province="01", ward="00004") == [{"code": "P01-STP"}]
    assert catalog.agencies_for("P1", province="01", ward="7") == [{"code": "P01-STP"}, {"code": "W00007-UBND"}]
    assert catalog.agencies_for("P1", province="01", ward=8) == [{"code": "P01-STP"}]
    catalog.agencies_for("P1", province="01", ward="8")[0]["code"] = "changed by a caller"
    assert catalog.agencies_for("P1", province="01", ward="8") == [{"code": "P01-STP"}]
    assert fake.calls == [("agencies_by_ward", "P1", "01")]


def test_a_ward_the_table_does_not_list_or_no_ward_is_asked_about_alone():
    fake = FakeCatalog()
    _hanoi(fake)
    catalog = CachedCatalog(fake, TtlCache(60, 100, clock=Clock()))
    catalog.agencies_for("P1", province="01", ward="21220")  # another province's ward: the catalog refuses it
    catalog.agencies_for("P1", province="01", ward="4; DROP")
    catalog.agencies_for("P1", province="01")
    assert [c[0] for c in fake.calls] == ["agencies_by_ward", "agencies_for", "agencies_for", "agencies_for"]


def test_a_catalog_without_the_table_or_with_a_malformed_one_is_asked_per_place():
    fake = FakeCatalog()  # tables None: MethodNotFound
    catalog = CachedCatalog(fake, TtlCache(60, 100, clock=Clock()))
    for _ in range(2):
        assert catalog.agencies_for("P1", province="01", ward="4") == fake.agencies
    assert [c[0] for c in fake.calls] == ["agencies_for"]
    fake.tables = {("P2", "01"): {"wards": "not a list"}}
    assert catalog.agencies_for("P2", province="01", ward="4") == fake.agencies
    assert [c[0] for c in fake.calls] == ["agencies_for", "agencies_by_ward", "agencies_for"]


def test_catalog_events_drop_the_tables_as_they_drop_the_agency_lists():
    fake = FakeCatalog()
    _hanoi(fake)
    cache = TtlCache(60, 100, clock=Clock())
    catalog = CachedCatalog(fake, cache)
    for code in ("P1", "P2"):
        catalog.agencies_for(code, province="01", ward="4")
    assert invalidate(cache, "ProcedureAmended", {"data": {"code": "P1", "version": 2}}) == 1
    catalog.agencies_for("P1", province="01", ward="4")
    catalog.agencies_for("P2", province="01", ward="4")
    assert [c[1] for c in fake.calls] == ["P1", "P2", "P1"]
    fake.tables[("P2", "01")] = dict(fake.tables[("P2", "01")], everywhere=[])  # its office dissolved
    assert invalidate(cache, "AgencyDissolved", {"data": {"code": "P01-SYT", "successor": None}}) == 2
    assert catalog.agencies_for("P2", province="01", ward="4") == []
