"""The router's local copy of the agencies brought up to the catalog's list
(``services.router.agency_sync``): real database; the catalog's list is a function here, and
the real one is read from the running system's catalog at the end."""

from __future__ import annotations

import time
import uuid

import psycopg2

from services.router import repository
from services.router.agency_sync import AgencySync
from services.router.catalog_client import agency_lister


def _code() -> str:
    return f"S{uuid.uuid4().hex[:8].upper()}"


def _agency(code: str, version: int, status: str = "active", successor: str | None = None) -> dict:
    return {"code": code, "name": f"Office {code}", "status": status, "successor": successor, "version": version,
            "level": "commune", "province_code": 1}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_copy_that_missed_dissolutions_gets_the_whole_successor_chain(router_store):
    first, second, last = _code(), _code(), _code()
    with router_store.transaction() as cur:  # it heard of the first agency's registration only
        repository.upsert_agency(cur, first, "Office", "active", None, 1)
    catalog = [_agency(first, 2, "dissolved", second), _agency(second, 2, "dissolved", last), _agency(last, 1)]
    assert AgencySync(router_store, lambda: catalog).apply(catalog) == 3
    with router_store.transaction() as cur:
        chain = repository.successors(cur)
        assert chain[first] == second and chain[second] == last and last not in chain
        assert repository.get_agency(cur, last)["status"] == "active"
        assert repository.agency_versions(cur, [first, second, last]) == {first: 2, second: 2, last: 1}


def test_a_copy_ahead_of_the_read_is_left_alone_and_a_second_read_changes_nothing(router_store):
    code, successor = _code(), _code()
    with router_store.transaction() as cur:  # an event newer than the list read a moment earlier
        repository.upsert_agency(cur, code, "Office", "dissolved", successor, 3)
    sync = AgencySync(router_store, None)
    assert sync.apply([_agency(code, 2, "active"), _agency(successor, 1)]) == 1  # only the successor
    assert sync.apply([_agency(code, 2, "active"), _agency(successor, 1)]) == 0
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, code)["status"] == "dissolved"
        assert repository.successors(cur)[code] == successor


def test_an_agency_learnt_over_rpc_takes_the_catalogs_version(router_store):
    code, successor = _code(), _code()
    with router_store.transaction() as cur:  # learnt without a version (resolve_agency)
        repository.ensure_agency(cur, code, "active", None)
    assert AgencySync(router_store, None).apply([_agency(code, 2, "dissolved", successor)]) == 1
    with router_store.transaction() as cur:
        assert repository.successors(cur)[code] == successor


def test_malformed_entries_of_the_answer_are_skipped(router_store):
    good = _code()
    hostile = [None, "P01", {"code": None, "version": 1, "status": "active"},
               {"code": _code(), "version": True, "status": "active"},
               {"code": _code(), "version": "2", "status": "active"},
               {"code": _code(), "version": 2, "status": "closed"},
               {"code": _code(), "version": 2, "status": "dissolved", "successor": ["X"]},
               {"code": "", "version": 2, "status": "active"},
               _agency(good, 1)]
    assert AgencySync(router_store, None).apply(hostile) == 1
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, good)["status"] == "active"


def test_it_reads_at_start_then_once_an_interval_and_again_soon_after_a_failure(router_store):
    code = _code()
    calls: list[str] = []
    answers: list = [ConnectionError("catalog not up yet"), [_agency(code, 1)], [_agency(code, 2, "dissolved", None)]]

    def list_remote() -> list[dict]:
        calls.append("read")
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = Clock()
    sync = AgencySync(router_store, list_remote, interval_s=600, clock=clock)
    assert sync.run_if_due() is None  # the catalog did not answer: due again at the next tick
    assert sync.run_if_due() == 1 and len(calls) == 2
    clock.now += 599
    assert sync.run_if_due() is None and len(calls) == 2  # not due yet
    clock.now += 1
    assert sync.run_if_due() == 1 and len(calls) == 3
    with router_store.transaction() as cur:
        assert repository.get_agency(cur, code)["status"] == "dissolved"
    assert not AgencySync(router_store, None).due()  # no catalog to ask (CATALOG_FALLBACK off)


def test_the_catalogs_list_holds_every_agency_with_its_version(system, amqp_uri):
    """The running catalog answers the router's read: every page, dissolved agencies with
    their successors, and versions that match the events' stream versions."""
    agencies = agency_lister(amqp_uri)()
    codes = [a["code"] for a in agencies]
    assert len(codes) == len(set(codes)) > 100  # more than one page of 100
    dissolved = {a["code"]: a for a in agencies if a["status"] == "dissolved"}
    assert dissolved["P62-SKHDT"]["successor"] == "P62-STC" and dissolved["P62-STC"]["successor"] == "P51-STC"
    assert all(a["version"] >= 2 for a in dissolved.values())  # registered, then dissolved


def test_the_running_router_repairs_a_copy_that_lost_a_dissolution(system, migrated_database):
    """The system's router (``AGENCY_SYNC_INTERVAL`` 5 s here) finds its copy of P62-SKHDT
    taken back to before its dissolution and reads it again from the catalog; twice, so the
    second repair is a later read, not the one after start."""
    conn = psycopg2.connect(migrated_database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for _ in range(2):
                cur.execute("UPDATE router.agencies SET status = 'active', successor = NULL, stream_version = 0 "
                            "WHERE code = 'P62-SKHDT'")
                assert cur.rowcount == 1
                deadline = time.monotonic() + 60
                row = None
                while time.monotonic() < deadline:
                    cur.execute("SELECT status, successor, stream_version FROM router.agencies "
                                "WHERE code = 'P62-SKHDT'")
                    row = cur.fetchone()
                    if row[0] == "dissolved":
                        break
                    time.sleep(0.5)
                assert row[0] == "dissolved" and row[1] == "P62-STC" and row[2] >= 2, row
    finally:
        conn.close()
