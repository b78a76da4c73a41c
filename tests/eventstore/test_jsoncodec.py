"""``portal_common.jsoncodec``: orjson where it gives the values the standard library and kombu
give, and their codec wherever it would not; an event published on the real broker reads back
as its envelope."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import time
import uuid

import kombu.serialization
import pytest
from kombu import Connection, Exchange, Queue
from kombu.utils import json as kombu_json

from portal_common import jsoncodec
from portal_common.eventstore.events import RecordedEvent
from portal_common.outbox import publish_event

PLAIN = [
    {"code": "P01-BHXH-261208-0002", "n": 3, "ok": True, "none": None, "ratio": 0.25,
     "name": "Nguyễn Văn Ánh \u0000 \"quoted\" \\ /", "list": [1, [2, {"x": []}]], "empty": {}},
    [], "text", 0, -1.5e300, 2 ** 63 - 1, -(2 ** 63),
]


@pytest.mark.parametrize("value", PLAIN)
def test_loads_and_dumps_give_the_standard_library_s_values(value):
    text = json.dumps(value)
    assert jsoncodec.loads(text) == json.loads(text)
    assert jsoncodec.loads(text.encode()) == json.loads(text)
    assert json.loads(jsoncodec.dumps(value)) == value


def test_integers_beyond_64_bits_fall_back_to_the_standard_library():
    big = {"n": 2 ** 70, "m": -(2 ** 80)}
    assert jsoncodec.loads(json.dumps(big)) == big
    assert json.loads(jsoncodec.dumps(big)) == big
    assert jsoncodec.message_loads(kombu_json.dumps(big).encode()) == big


def test_dumps_writes_utf8_without_escapes_or_spaces():
    assert jsoncodec.dumps({"a": "Hà Nội", "b": [1, 2]}) == '{"a":"Hà Nội","b":[1,2]}'.encode()


@pytest.mark.parametrize("value", [dt.datetime(2026, 12, 7, tzinfo=dt.UTC), dt.date(2026, 12, 7),
                                   decimal.Decimal("1.5"), object(), {1, 2}])
def test_dumps_refuses_what_json_dumps_refuses(value):
    with pytest.raises(TypeError):
        json.dumps({"v": value})
    with pytest.raises(TypeError):
        jsoncodec.dumps({"v": value})


@pytest.mark.parametrize("value", [
    *PLAIN,
    {"at": dt.datetime(2026, 12, 7, 1, 2, 3, 456, tzinfo=dt.UTC), "day": dt.date(2026, 12, 7)},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "fee": decimal.Decimal("150000.50")},
    {"raw": b"bytes", "nested": [{"when": dt.time(9, 30)}]},
    {"text": "a literal __type__ in a string, no marker", "n": 2 ** 70},
])
def test_a_message_decodes_to_what_kombu_decodes_it_to(value):
    body = kombu_json.dumps(value).encode()
    expected = kombu_json.loads(body)
    for form in (body, bytearray(body), memoryview(body), body.decode()):
        got = jsoncodec.message_loads(form)
        assert got == expected
        assert _types(got) == _types(expected)


def test_non_finite_numbers_and_bad_json_go_to_kombu():
    nan = jsoncodec.message_loads(b'{"x": NaN}')
    assert math.isnan(nan["x"])
    for bad in (b"{", b"{'single': 1}", b"\xff\xfe"):
        with pytest.raises(ValueError):
            kombu_json.loads(bad)
        with pytest.raises(ValueError):
            jsoncodec.message_loads(bad)


def test_install_makes_message_loads_kombu_s_json_decoder():
    jsoncodec.install()
    assert kombu.serialization.registry._decoders["application/json"] is jsoncodec.message_loads
    content_type, encoding, body = kombu.serialization.dumps({"at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC)}, "json")
    assert (content_type, encoding) == ("application/json", "utf-8")
    back = kombu.serialization.loads(body, content_type, encoding)
    assert back == {"at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC)}
    with pytest.raises(kombu.exceptions.DecodeError):
        kombu.serialization.loads(b"{not json", content_type, encoding)


@pytest.mark.integration
def test_a_published_event_reads_back_as_its_envelope(amqp_uri):
    event = RecordedEvent(
        position=41, stream_id="P01-BHXH-261208-0002", stream_type="dossier", version=1,
        event_id=uuid.uuid4(), event_type="DossierSubmitted", schema_version=1,
        data={"applicant": {"name": "Trần Thị Bình"}, "fee": 2 ** 70, "documents": [{"sha256": "ab" * 32}]},
        metadata={"correlation_id": "corr-1", "actor": {"kind": "citizen"}, "attributes": {"agency": "P01"}},
        occurred_at=dt.datetime(2026, 12, 7, 20, 0, tzinfo=dt.UTC),
        recorded_at=dt.datetime(2026, 12, 7, 20, 0, 1, tzinfo=dt.UTC))
    exchange = Exchange(f"test-codec-{uuid.uuid4().hex[:8]}", type="topic", durable=False, auto_delete=True)
    with Connection(amqp_uri, connect_timeout=10) as conn:
        queue = Queue(f"test-codec-{uuid.uuid4().hex[:8]}", exchange, routing_key="#", auto_delete=True)(conn.channel())
        queue.declare()
        with conn.Producer(exchange=exchange) as producer:
            publish_event(producer, event, routing_key=event.event_type)
        message = None
        for _ in range(100):
            message = queue.get(no_ack=True)
            if message is not None:
                break
            time.sleep(0.05)
        assert message is not None, "the published event never arrived"
        jsoncodec.install()
        assert message.content_type == "application/json"
        assert message.payload == event.envelope()
        assert json.loads(message.body) == event.envelope()  # any JSON reader, not only ours
        assert message.headers["event_type"] == "DossierSubmitted"
        assert message.headers["position"] == 41
        assert message.headers["agency"] == "P01"
        assert message.properties["message_id"] == str(event.event_id)


def _types(value):
    """The value's shape with each leaf's type, so a datetime does not pass for its text."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)

