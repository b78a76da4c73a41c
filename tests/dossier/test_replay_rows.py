"""The rebuild's fold (``lifecycle.replay_rows``: in place, payloads read as text and decoded only
where the fold reads them) against the domain's ``evolve``, event type by event type, with
well-formed, odd and hostile payloads; and the rebuild's COPY text against ``_copy_value``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal_common.db import Database, json_loads
from portal_common.migrations import migrate
from services.dossier import queries
from services.dossier.domain import lifecycle
from services.dossier.domain.lifecycle import DossierState, evolve, replay_rows

DATES = st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31)).map(dt.date.isoformat)
MOMENTS = st.datetimes(dt.datetime(2025, 1, 1), dt.datetime(2027, 12, 31),
                       timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=7)),
                                                  dt.timezone(dt.timedelta(hours=-3, minutes=-30))]))
TEXT = st.text(max_size=8)
# any JSON value, big integers (beyond orjson's 64 bits) and odd strings included
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | DATES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)
DOCUMENTS = st.lists(st.fixed_dictionaries({"id": TEXT, "name": TEXT}, optional={"size": st.integers(0, 99)}),
                     max_size=2)
REQUEST_IDS = st.sampled_from(["r1", "r2", "r3"])
FEE_IDS = st.sampled_from(["le-phi", "phi"])  # a dispute of an undeclared fee raises in both folds

# event type -> its payload as the domain writes it (keys the fold reads and some it does not)
WELL_FORMED: dict[str, st.SearchStrategy] = {
    "DossierSubmitted": st.fixed_dictionaries(
        {"code": TEXT, "owner": st.fixed_dictionaries({"account_id": TEXT, "kind": TEXT}),
         "applicant": st.dictionaries(TEXT, TEXT, max_size=2), "procedure": st.fixed_dictionaries(
             {"code": TEXT, "name": TEXT, "processing_days": st.integers(0, 9)}),
         "agency": st.fixed_dictionaries({"code": TEXT}, optional={"name": TEXT}), "submitted_at": TEXT},
        optional={"form": st.none() | st.dictionaries(TEXT, TEXT, max_size=2), "documents": DOCUMENTS,
                  "idempotency_key": st.none() | TEXT}),
    "DossierReceived": st.fixed_dictionaries({"received_at": TEXT, "appointment_date": st.none() | DATES,
                                              "processing_days": st.integers(0, 9)}),
    "DossierRefused": st.fixed_dictionaries({"reason": st.none() | TEXT}),
    "DossierProcessingStarted": st.fixed_dictionaries({}, optional={"note": TEXT}),
    "SupplementRequested": st.fixed_dictionaries({"missing": st.lists(TEXT, max_size=2), "reason": TEXT},
                                                 optional={"due_date": st.none() | DATES}),
    "DossierSupplemented": st.fixed_dictionaries({}, optional={"documents": DOCUMENTS, "note": TEXT}),
    "DossierForwarded": st.fixed_dictionaries(
        {"to_agency": st.fixed_dictionaries({"code": TEXT}, optional={"name": TEXT}), "from_agency_code": TEXT}),
    "DossierPaused": st.fixed_dictionaries({"paused_on": DATES}),
    "DossierResumed": st.fixed_dictionaries({}, optional={"appointment_date": st.none() | DATES}),
    "DeadlineExtended": st.fixed_dictionaries({"new_date": DATES}),
    "DossierResultReady": st.fixed_dictionaries({}, optional={"documents": DOCUMENTS}),
    "DossierResultReturned": st.fixed_dictionaries({}, optional={"returned_at": TEXT}),
    "DossierRejected": st.fixed_dictionaries({"reason": TEXT}),
    "DossierWithdrawn": st.fixed_dictionaries({}, optional={"reason": st.none() | TEXT}),
    "DossierBecameOverdue": st.fixed_dictionaries({}, optional={"detected_on": DATES}),
    "DossierPaymentRequested": st.fixed_dictionaries(
        {"request_id": REQUEST_IDS, "amount": st.integers(1, 10**6), "blocking": st.booleans()},
        optional={"due_date": st.none() | DATES, "reason": st.none() | TEXT, "stopped_on": st.none() | DATES}),
    "DossierPaymentReceived": st.fixed_dictionaries(
        {"request_ids": st.lists(REQUEST_IDS, max_size=3)}, optional={"appointment_date": st.none() | DATES}),
    "DossierPaymentExpired": st.fixed_dictionaries({"request_ids": st.lists(REQUEST_IDS, max_size=3)}),
    "DossierReceiptAttached": st.fixed_dictionaries(
        {"document": st.fixed_dictionaries({"id": TEXT}), "payment_id": TEXT, "receipt_no": TEXT}),
    "FeeExemptionDeclared": st.fixed_dictionaries(
        {"fee_id": FEE_IDS, "fee_name": TEXT, "amount": st.integers(1, 10**6), "exemption": TEXT,
         "declared_at": TEXT}, optional={"due": st.none() | st.sampled_from(["before_reception", "with_result"]),
                                         "agency_code": TEXT}),
    "FeeExemptionDisputed": st.fixed_dictionaries(
        {"fee_id": FEE_IDS, "reason": TEXT, "disputed_at": TEXT, "request_id": REQUEST_IDS},
        optional={"agency_code": TEXT}),
}


def test_every_dossier_event_type_is_covered():
    assert set(WELL_FORMED) == set(lifecycle.EVENT_TYPES) == set(lifecycle.STEPS)
    assert set(lifecycle.STEPS) >= lifecycle.IGNORES_DATA


@st.composite
def odd(draw, payload: dict) -> object:
    """A payload bent out of shape: keys dropped, values of any JSON type, or no object at all."""
    how = draw(st.sampled_from(["drop", "replace", "add", "whole"]))
    payload = dict(payload)
    if how == "whole":
        return draw(JSON)
    if how == "add":
        payload[draw(TEXT)] = draw(JSON)
    elif payload:
        key = draw(st.sampled_from(sorted(payload)))
        if how == "drop":
            del payload[key]
        else:
            payload[key] = draw(JSON)
    return payload


@st.composite
def events(draw, hostile: bool) -> list[tuple[str, object, dt.datetime]]:
    """A stream opened by a submission (usually), then events of any type in any order."""
    types = st.sampled_from(sorted(WELL_FORMED))
    if hostile:
        types = types | st.just("NotADossierEvent")
    kinds = [draw(types) for _ in range(draw(st.integers(0, 10)))]
    if draw(st.integers(0, 9)) > 0:
        kinds.insert(0, "DossierSubmitted")
    stream = []
    declared: set[str] = set()
    for kind in kinds:
        payload = draw(WELL_FORMED[kind]) if kind in WELL_FORMED else {}
        if not hostile and kind == "FeeExemptionDisputed" and payload["fee_id"] not in declared:
            # a well-formed dispute follows its declaration (an undeclared one raises in both folds)
            declaration = dict(draw(WELL_FORMED["FeeExemptionDeclared"]), fee_id=payload["fee_id"])
            stream.append(("FeeExemptionDeclared", declaration, draw(MOMENTS)))
        if kind == "FeeExemptionDeclared" or (not hostile and kind == "FeeExemptionDisputed"):
            declared.add(payload["fee_id"])
        if hostile and draw(st.integers(0, 3)) == 0:
            payload = draw(odd(payload))
        stream.append((kind, payload, draw(MOMENTS)))
    return stream


def folded(stream) -> DossierState | BaseException:
    """What the domain's fold makes of the stream, or what it raises, each payload decoded as
    the connection decodes a jsonb value (``json_loads``: orjson, which reads integers beyond
    64 bits as floats)."""
    state = DossierState()
    try:
        for kind, payload, at in stream:
            state = evolve(state, kind, json_loads(json.dumps(payload, ensure_ascii=False)), at, keep_timeline=False)
    except Exception as exc:
        return exc
    return state


def replayed(stream) -> DossierState | BaseException:
    """What the rebuild makes of it: rows as the scan reads them (payload as jsonb text)."""
    rows = [("dossier-x", kind, json.dumps(payload, ensure_ascii=False), at) for kind, payload, at in stream]
    try:
        return replay_rows(rows, queries._payload)
    except Exception as exc:
        return exc


def same(expected, got) -> None:
    if isinstance(expected, BaseException):
        assert type(got) is type(expected) and str(got) == str(expected)
    else:
        assert got == expected  # every field of the state, the projections' and the others
        for p in queries.PROJECTIONS.values():
            if p.stream_type == "dossier":
                assert rows_of(p, got) == rows_of(p, expected)


def rows_of(p: queries.Projection, state: DossierState) -> list[tuple] | str:
    try:
        return p.rows(state)
    except Exception as exc:  # a stream without its submission has no procedure to project
        return repr(exc)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events(hostile=False))
def test_well_formed_streams_fold_in_place_as_the_domain_folds_them(stream):
    expected = folded(stream)
    assert not isinstance(expected, BaseException)
    with mock.patch.object(lifecycle, "evolve", wraps=evolve) as fallback:
        same(expected, replayed(stream))
    assert not fallback.called, "a well-formed stream is folded in place, without falling back on evolve"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events(hostile=True))
def test_odd_and_hostile_streams_give_what_the_domain_gives(stream):
    same(folded(stream), replayed(stream))


# event type -> a payload with every key its fold may read (and one it does not)
FULL: dict[str, dict] = {
    "DossierSubmitted": {"code": "C", "owner": {"account_id": "a"}, "applicant": {"full_name": "x"},
                         "form": {"f": 1}, "procedure": {"code": "p", "name": "n"},
                         "agency": {"code": "A", "name": "N"}, "submitted_at": "s",
                         "documents": [{"id": "d"}], "idempotency_key": None},
    "DossierReceived": {"received_at": "r", "appointment_date": "2026-03-09", "processing_days": 5},
    "DossierRefused": {"reason": "no"},
    "DossierProcessingStarted": {"note": "n"},
    "SupplementRequested": {"missing": ["photo"], "reason": "r", "due_date": "2026-03-20"},
    "DossierSupplemented": {"documents": [{"id": "e"}], "note": "n"},
    "DossierForwarded": {"to_agency": {"code": "B", "name": "M"}, "from_agency_code": "A"},
    "DossierPaused": {"paused_on": "2026-03-03"},
    "DossierResumed": {"appointment_date": "2026-03-10", "resumed_on": "2026-03-04"},
    "DeadlineExtended": {"new_date": "2026-04-01", "previous_date": "2026-03-09"},
    "DossierResultReady": {"documents": [{"id": "o"}]},
    "DossierResultReturned": {"returned_at": "t"},
    "DossierRejected": {"reason": "no"},
    "DossierWithdrawn": {"reason": "mine"},
    "DossierBecameOverdue": {"detected_on": "2026-03-10"},
    "DossierPaymentRequested": {"request_id": "r1", "amount": 5, "blocking": True, "due_date": "2026-03-20",
                                "reason": "fee", "stopped_on": "2026-03-05"},
    "DossierPaymentReceived": {"request_ids": ["r1"], "appointment_date": "2026-03-12", "payment_id": "p"},
    "DossierPaymentExpired": {"request_ids": ["r1"], "due_date": "2026-03-20"},
    "DossierReceiptAttached": {"document": {"id": "rc"}, "payment_id": "p", "receipt_no": "7"},
    "FeeExemptionDeclared": {"fee_id": "le-phi", "fee_name": "Lệ phí", "amount": 200000, "exemption": "Trẻ em",
                             "due": "before_reception", "declared_at": "d", "agency_code": "A"},
    "FeeExemptionDisputed": {"fee_id": "le-phi", "reason": "no", "disputed_at": "t", "request_id": "r2",
                             "agency_code": "A"},
}
ODD_VALUES = (None, [], ["r1"], {}, {"code": "Z"}, "", "r1", "2026-03-11", "ab", 0, 7, 2**80, 1.5, True, False)
BEFORE = {  # streams an event of each type may follow
    "nothing": [],
    "submission": ["DossierSubmitted"],
    "a payment request": ["DossierSubmitted", "DossierReceived", "DossierPaused", "DossierPaymentRequested"],
    "a closing": ["DossierSubmitted", "DossierReceived", "DossierPaymentRequested", "DossierRejected"],
    "an exemption": ["DossierSubmitted", "FeeExemptionDeclared"],
}


def test_full_payloads_are_well_formed():
    assert set(FULL) == set(WELL_FORMED)


@pytest.mark.parametrize("before", sorted(BEFORE))
@pytest.mark.parametrize("kind", sorted(FULL))
def test_each_key_of_each_event_type_missing_or_of_any_type(kind, before):
    at = dt.datetime(2026, 3, 2, 3, 0, 0, 5, tzinfo=dt.UTC)
    prefix = [(k, FULL[k], at + dt.timedelta(minutes=i)) for i, k in enumerate(BEFORE[before])]
    payloads: list[object] = [FULL[kind], *ODD_VALUES]
    for key in FULL[kind]:
        payloads.append({k: v for k, v in FULL[kind].items() if k != key})
        payloads.extend({**FULL[kind], key: value} for value in ODD_VALUES)
    for payload in payloads:
        stream = [*prefix, (kind, payload, at + dt.timedelta(hours=1))]
        same(folded(stream), replayed(stream))
        stream.append(("DossierPaymentReceived", {"request_ids": ["r1", "r2"]}, at + dt.timedelta(hours=2)))
        same(folded(stream), replayed(stream))


def test_payment_round_trip_and_closing_events_keep_their_times():
    t = [dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC) + dt.timedelta(hours=i, microseconds=i) for i in range(8)]
    stream = [
        ("DossierSubmitted", {"code": "C", "owner": {"account_id": "a"}, "applicant": {},
                              "procedure": {"code": "p", "name": "n"}, "agency": {"code": "A", "name": "N"},
                              "submitted_at": "s", "documents": [{"id": "d"}]}, t[0]),
        ("DossierReceived", {"received_at": "r", "appointment_date": "2026-03-09"}, t[1]),
        ("DossierPaused", {"paused_on": "2026-03-03"}, t[2]),
        ("DossierPaymentRequested", {"request_id": "r1", "amount": 5, "blocking": True,
                                     "stopped_on": "2026-03-04"}, t[3]),
        ("DossierPaymentReceived", {"request_ids": ["r1"], "appointment_date": "2026-03-12"}, t[4]),
        ("DossierWithdrawn", {"reason": None}, t[5]),
        ("DossierPaymentRequested", {"request_id": "r2", "amount": 5, "blocking": True}, t[6]),
        ("DossierPaymentReceived", {"request_ids": ["r2"]}, t[7]),
    ]
    for end in range(1, len(stream) + 1):
        same(folded(stream[:end]), replayed(stream[:end]))
    state = replayed(stream)
    assert state.status == "withdrawn" and state.closed_at == t[5].isoformat() and state.version == 8


def test_an_empty_stream_is_the_empty_state():
    assert replay_rows([], queries._payload) == DossierState()


# -- the COPY text --------------------------------------------------------------------------

VALUES = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
          | st.text(max_size=6) | st.sampled_from(["a\tb", "a\\b", "x\ny", "\r", "\\N", "é"])
          | st.dates() | st.datetimes(timezones=st.sampled_from([dt.UTC, None]))
          | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=2))


@st.composite
def row_sets(draw) -> list[tuple]:
    width = draw(st.integers(1, 5))
    # columns of one type (the fast path) and columns of several (the value-by-value one)
    columns = [draw(st.sampled_from([VALUES, st.none() | st.text(max_size=4), st.none() | st.dates(),
                                     st.booleans(), st.integers(), st.text(max_size=4)])) for _ in range(width)]
    return [tuple(draw(c) for c in columns) for _ in range(draw(st.integers(1, 6)))]


@settings(max_examples=800, deadline=None)
@given(rows=row_sets())
def test_copy_text_is_copy_value_of_every_value(rows):
    expected = "".join("\t".join(map(queries._copy_value, row)) + "\n" for row in rows)
    assert queries._copy_text(rows) == expected


def test_copy_text_of_no_rows_is_empty():
    assert queries._copy_text([]) == ""


# -- the rebuild's threads --------------------------------------------------------------------


class _FailingCursor:
    def copy_expert(self, statement, stream):
        raise RuntimeError(f"refused: {statement}")

    def execute(self, statement):
        raise RuntimeError(f"refused: {statement}")


def test_a_failed_copy_is_raised_to_the_scan():
    writer = queries._Writer(_FailingCursor())
    writer.copy("COPY t FROM STDIN", "x\n")
    with pytest.raises(RuntimeError, match="refused: COPY t"):
        writer.close()
    with pytest.raises(RuntimeError, match="refused: COPY t"):
        writer.copy("COPY u FROM STDIN", "y\n")
    writer.stop()  # idempotent


def test_a_failed_fetch_is_raised_to_the_scan():
    with pytest.raises(RuntimeError, match="refused: FETCH 10 FROM c"):
        list(queries._fetched(_FailingCursor(), "c", 10))


def test_a_log_the_domain_cannot_fold_fails_the_rebuild_and_keeps_the_old_rows(database_url):
    schema = f"dossier_rr_{uuid.uuid4().hex[:10]}"
    migrate(database_url, schema, "services.dossier", create_database=False)
    db = Database(database_url, schema, size=2)
    try:
        with db.transaction(dict_rows=False) as cur:
            cur.execute("INSERT INTO dossier_status (code, status, procedure_code, procedure_name, agency_code, "
                        "submitted_at, overdue, paused, version, updated_at) "
                        "VALUES ('OLD', 'submitted', 'p', 'n', 'A', now(), false, false, 1, now())")
            for version, (kind, payload) in enumerate([
                    ("DossierSubmitted", {"code": "C", "owner": {"account_id": "a"}, "applicant": {},
                                          "procedure": {"code": "p", "name": "n"}, "agency": {"code": "A"},
                                          "submitted_at": "2026-03-02T03:00:00+00:00"}),
                    ("DossierRejected", {"no_reason": True})], start=1):
                cur.execute(
                    "INSERT INTO events (position, stream_id, stream_type, version, event_id, event_type, "
                    "schema_version, payload, occurred_at, prev_hash, hash) VALUES "
                    "(%s, 'dossier-C', 'dossier', %s, %s, %s, 1, %s, now(), '\\x00', '\\x00')",
                    (version, version, uuid.uuid4(), kind, json.dumps(payload)))
        with pytest.raises(KeyError, match="reason"):
            queries.rebuild(db, batch_size=1)
        with db.transaction(dict_rows=False) as cur:
            cur.execute("SELECT code FROM dossier_status")
            assert cur.fetchall() == [("OLD",)]
    finally:
        db.close()
