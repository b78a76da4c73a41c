"""The agency feed under concurrent writers: a follower that reads ``position > last seen``
sees every entry exactly once, in order, even when writers commit in another order than
they took their positions (each writer holds its transaction open a random while after
appending, the way a slow commit would)."""

from __future__ import annotations

import random
import threading
import time
import uuid

from portal_common.db import Database
from services.router import feed_repository as feed

WRITERS, PER_WRITER = 4, 40


def _entry(agency: str, n: int) -> dict:
    return {"agency_code": agency, "event_id": str(uuid.uuid4()), "event_type": "DossierReceived",
            "channels": ["dossiers"], "dossier_code": f"{agency}-{n}", "stream_version": 1, "status": "received",
            "national_status_code": 2, "cloudevent": {"id": str(n)}}


def test_a_follower_never_misses_a_late_commit(router_db_url):
    agency = f"GAP-{uuid.uuid4().hex[:6]}"
    db = Database(router_db_url, "router", size=WRITERS + 2)
    written: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rand = random.Random(seed)
        try:
            for n in range(PER_WRITER):
                entry = _entry(agency, seed * 1000 + n)
                with db.transaction() as cur:
                    time.sleep(rand.random() * 0.003)  # other work before the append
                    feed.append(cur, [entry])
                    time.sleep(rand.random() * 0.004)  # a slow commit, holding the position
                with lock:
                    written.append(entry["event_id"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    seen: list[tuple[int, str]] = []

    def follower() -> None:
        after = 0
        try:
            while True:
                finished = done.is_set()
                with db.transaction() as cur:
                    rows = feed.read_feed(cur, agency, after, 7)
                for row in rows:
                    seen.append((row["position"], str(row["event_id"])))
                    after = row["position"]
                if finished and not rows:
                    return
                if not rows:
                    time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    reader = threading.Thread(target=follower)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    reader.join(60)
    db.close()
    assert not errors, errors
    assert len(written) == WRITERS * PER_WRITER
    positions = [p for p, _ in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), "in order, each once"
    assert sorted(e for _, e in seen) == sorted(written), "the follower saw every committed entry"


def test_the_same_event_enters_an_agency_feed_once(router_db_url):
    agency = f"ONCE-{uuid.uuid4().hex[:6]}"
    db = Database(router_db_url, "router", size=2)
    entry = _entry(agency, 1)
    try:
        with db.transaction() as cur:
            first = feed.append(cur, [entry])
        with db.transaction() as cur:
            again = feed.append(cur, [entry, {**entry, "agency_code": agency + "-2"}])
            rows = feed.read_feed(cur, agency, 0, 10)
        assert len(first) == 1 and len(again) == 1 and len(rows) == 1
    finally:
        db.close()
