"""``python -m bench codec [--quick]``: the JSON of a submission's messages, orjson against kombu's codec.

Options: ``--rounds N`` (7, 3 with ``--quick``), ``--loops N`` per round (2,000, 300).

Every message between the processes is JSON: nameko's RPC requests and replies, and the events
the outbox relays publish. kombu's codec (the baseline) encodes with the standard library and
decodes with an object hook called on every object; ``portal_common.jsoncodec`` decodes with
orjson unless the message holds a typed value of kombu's, and the relays encode with orjson.
For the messages of one submission (the filing's RPC request with two documents and its reply,
and the ``DossierSubmitted`` event, its payload checked against the catalogue), this times,
in this process, each way's microseconds per message (the best round's mean) and checks that
both decode to equal values; a message that differs fails the run. It also times the gateway's
reading of the filing's HTTP body under its limits, against the same with the depth scan that
every body paid before: now only a body with more brackets than the depth limit is scanned.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from kombu.utils import json as kombu_json

from bench.support import Failures, finish
from gateway.http import json_body
from portal_common import jsoncodec
from portal_common.contracts import CATALOGUE
from portal_common.eventstore.events import RecordedEvent

_PDF = base64.b64encode(b"%PDF-1.4\n" + bytes(range(256)) * 48).decode()  # 12 KB each, as scanned pages are small


def _filing_request() -> dict[str, Any]:
    """nameko's body of the gateway's ``dossier.submit`` call, as the gateway sends it."""
    documents = [{"requirement": str(i), "name": f"giay-to-{i}.pdf", "content_type": "application/pdf",
                  "content_base64": _PDF} for i in (101, 102)]
    return {"args": [], "kwargs": {
        "owner": {"account_id": str(uuid.uuid4()), "kind": "citizen", "subject": "001203004567"},
        "filing": {"procedure_code": "1.000110", "agency_code": "P01-BHXH",
                   "applicant": {"full_name": "Nguyễn Thị Ánh Dương", "province": "01", "ward": "00004",
                                 "phone": "0912345678", "email": "anh.duong@example.vn"},
                   "form": {"ly_do": "Cấp lại sổ bảo hiểm xã hội do bị mất", "so_so": "0123456789"},
                   "documents": documents},
        "idempotency_key": str(uuid.uuid4())}}


def _filing_reply() -> dict[str, Any]:
    return {"result": {"code": "P01-BHXH-261208-0002", "status": "submitted", "replayed": False,
                       "submitted_at": "2026-12-07T20:15:03.412345+00:00",
                       "documents": [{"id": str(uuid.uuid4()), "sha256": "ab" * 32} for _ in range(2)]},
            "error": None}


def _submitted_envelope() -> dict[str, Any]:
    data = {"code": "P01-BHXH-261208-0002",
            "owner": {"account_id": str(uuid.uuid4()), "kind": "citizen", "subject": "001203004567"},
            "applicant": {"full_name": "Nguyễn Thị Ánh Dương", "province": "01", "ward": "00004"},
            "form": {"ly_do": "Cấp lại sổ bảo hiểm xã hội do bị mất"},
            "procedure": {"code": "1.000110", "version": 3, "name": "Cấp lại sổ bảo hiểm xã hội",
                          "processing_days": 10},
            "agency": {"code": "P01-BHXH", "name": "Bảo hiểm xã hội quận Ba Đình", "level": "district"},
            "documents": [{"id": str(uuid.uuid4()), "requirement": str(i), "name": f"giay-to-{i}.pdf",
                           "content_type": "application/pdf", "size": 12_297, "sha256": "ab" * 32}
                          for i in (101, 102)],
            "submitted_at": "2026-12-07T20:15:03.412345+00:00", "idempotency_key": str(uuid.uuid4())}
    CATALOGUE.validate("DossierSubmitted", 1, data)
    at = dt.datetime(2026, 12, 7, 20, 15, 3, tzinfo=dt.UTC)
    return RecordedEvent(
        position=123_456, stream_id=data["code"], stream_type="dossier", version=1, event_id=uuid.uuid4(),
        event_type="DossierSubmitted", schema_version=1, data=data,
        metadata={"correlation_id": str(uuid.uuid4()), "actor": {"kind": "citizen", "id": data["owner"]["account_id"]},
                  "attributes": {"agency_code": "P01-BHXH", "procedure_code": "1.000110"}},
        occurred_at=at, recorded_at=at).envelope()


def _timed(work: Callable[[], Any], rounds: int, loops: int) -> float:
    """Microseconds per call: the best round's mean (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            work()
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench codec", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--loops", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    loops = args.loops or (300 if args.quick else 2_000)

    failures = Failures()
    messages = {"rpc_request": _filing_request(), "rpc_reply": _filing_reply(), "event": _submitted_envelope()}
    rows = []
    for name, value in messages.items():
        body = kombu_json.dumps(value).encode()
        if jsoncodec.message_loads(body) != kombu_json.loads(body):
            failures.add(f"{name}: decoded differently")
        base_us = _timed(lambda b=body: kombu_json.loads(b), rounds, loops)
        ours_us = _timed(lambda b=body: jsoncodec.message_loads(b), rounds, loops)
        rows.append((f"{name} decode", len(body), base_us, ours_us))
    # the gateway reads the filing's HTTP body under its limits; until 2026-12-07 every body was
    # first scanned for its depth, which only a body with more brackets than the limit needs now
    http_body = json.dumps(messages["rpc_request"]["kwargs"]["filing"], ensure_ascii=False).encode()
    if json_body.parse(http_body) != messages["rpc_request"]["kwargs"]["filing"]:
        failures.add("http body: parsed differently")
    base_us = _timed(lambda: (json_body.depth_of(http_body), json_body.parse(http_body)), rounds, loops)
    ours_us = _timed(lambda: json_body.parse(http_body), rounds, loops)
    rows.append(("http body parse", len(http_body), base_us, ours_us))
    envelope = messages["event"]
    if jsoncodec.message_loads(jsoncodec.dumps(envelope)) != envelope:
        failures.add("event: encoded differently")
    base_us = _timed(lambda: kombu_json.dumps(envelope).encode(), rounds, loops)
    ours_us = _timed(lambda: jsoncodec.dumps(envelope), rounds, loops)
    rows.append(("event encode", len(jsoncodec.dumps(envelope)), base_us, ours_us))

    print(f"{rounds} rounds of {loops} per way, best round's mean, in this process; the baseline is"
          " kombu's codec, and for the HTTP body the depth scan before the parse")
    print(f"  {'message':<20} {'bytes':>7} {'baseline µs':>12} {'now µs':>8} {'speed-up':>9}")
    for name, size, base_us, ours_us in rows:
        print(f"  {name:<20} {size:>7} {base_us:>12.1f} {ours_us:>8.1f} {base_us / ours_us:>8.1f}x")
    # one submission: its HTTP body read by the gateway, the RPC request decoded by the dossier
    # service, its reply by the gateway, the event encoded by the dossier's relay and decoded by
    # the router and by identity
    per_submission = [(0, 1), (1, 1), (2, 2), (3, 1), (4, 1)]
    base_total = sum(rows[i][2] * n for i, n in per_submission)
    ours_total = sum(rows[i][3] * n for i, n in per_submission)
    print(f"  {'one submission':<20} {'':>7} {base_total:>12.1f} {ours_total:>8.1f} {base_total / ours_total:>8.1f}x")
    print(f"  (failures: {failures.total})")
    figures = " ".join(
        f"{name.replace(' ', '_')}_us={ours_us:.1f} {name.replace(' ', '_')}_base_us={base_us:.1f} "
        f"{name.replace(' ', '_')}_speedup={base_us / ours_us:.2f}"
        for name, _, base_us, ours_us in rows)
    return finish("codec", f"{figures} submission_us={ours_total:.1f} submission_base_us={base_total:.1f} "
                           f"submission_speedup={base_total / ours_total:.2f}", failures)
