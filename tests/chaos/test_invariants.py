"""The invariant checker flags what it must, on made-up data (no database, no broker): a lost
or doubled filing, a code answered but not filed, a dossier that never reached its queue,
two delivery ids for one dossier, a wrong id, a phantom delivery; copies of one id pass."""

from __future__ import annotations

import uuid

import pytest

from tests.chaos.invariants import Logged, check_deliveries, check_filings, router_delivery_id
from tests.chaos.workload import Filing, Received

pytestmark = pytest.mark.chaos

AGENCY = "W00004-UBND"


def logged(n: int) -> list[Logged]:
    return [Logged(f"{AGENCY}-261204-{i + 1:04d}", str(uuid.uuid4()), AGENCY, f"k{i}", "acc") for i in range(n)]


def filed(entries: list[Logged]) -> list[Filing]:
    return [Filing(i, e.key or "", AGENCY, owner="acc", outcome="acknowledged", code=e.code)
            for i, e in enumerate(entries)]


def delivered(e: Logged, delivery_id: str | None = None, message_id: str | None = None) -> Received:
    did = delivery_id or str(router_delivery_id(e.event_id, e.agency))
    return Received(e.agency, message_id or did, did, did, "DossierSubmitted", e.event_id, e.code, False, 0.0)


def test_clean_run_passes_and_copies_of_one_delivery_id_are_only_counted():
    entries = logged(3)
    assert check_filings(filed(entries), entries).ok
    got = [delivered(e) for e in entries] + [delivered(entries[0])]
    check = check_deliveries(entries, got)
    assert check.ok, check.text()
    assert check.counts["delivered"] == 3 and check.counts["duplicate_copies"] == 1


def test_lost_doubled_and_wrongly_answered_filings_are_violations():
    entries = logged(4)
    filings = filed(entries)
    filings.append(Filing(9, "lost-key", AGENCY, owner="acc", outcome="acknowledged", code=f"{AGENCY}-261204-0009"))
    doubled = Logged(f"{AGENCY}-261204-0005", str(uuid.uuid4()), AGENCY, "k1", "acc")  # a second dossier for k1
    filings[2].code = f"{AGENCY}-261204-0099"  # answered a code the log does not have for that key
    check = check_filings(filings, [*entries, doubled])
    assert (check.counts["lost"], check.counts["doubled"], check.counts["wrong_code"]) == (1, 1, 1)
    assert not check.ok


def test_missing_doubled_wrong_id_and_phantom_deliveries_are_violations():
    entries = logged(5)
    phantom = Logged(f"{AGENCY}-261204-0042", str(uuid.uuid4()), AGENCY, "kx", "acc")
    got = [delivered(entries[0]),
           delivered(entries[1]), delivered(entries[1], delivery_id=str(uuid.uuid4())),  # two ids
           delivered(entries[2], delivery_id=str(uuid.uuid4())),  # not the router's id for the event
           delivered(entries[3], message_id="something-else"),  # message id is not the delivery id
           delivered(phantom)]
    check = check_deliveries(entries, got)  # entries[4] never arrived
    assert (check.counts["missing"], check.counts["doubled"], check.counts["wrong_id"], check.counts["phantom"]) == \
        (1, 1, 3, 1), check.text()
    assert not check.ok
