"""JSON through orjson wherever it yields the same values as the standard library.

orjson encodes and decodes several times faster than ``json``. Where the two could differ, the
standard library (or kombu's own codec) still does the work:

- integers beyond 64 bits, which orjson refuses, fall back to ``json`` both ways;
- a message kombu encoded with a typed value (``{"__type__": "datetime", "__value__": ...}``,
  as kombu's JSON encoder writes a datetime, a UUID or a Decimal) is decoded by kombu, which
  turns it back into that type; every other message decodes to the same dicts, lists, strings
  and numbers either way, without kombu's hook being called on every object.

``install()`` makes ``message_loads`` kombu's decoder of ``application/json`` in this process (every
RPC request and reply, every event a nameko consumer receives); the services and the gateway call
it as they start.
"""

from __future__ import annotations

import json
from typing import Any

import kombu.serialization
import orjson
from kombu.utils import json as kombu_json

__all__ = ["dumps", "install", "loads", "message_loads"]

#: orjson refuses these instead of writing them in its own way (a datetime as text, a dataclass as
#: an object), and ``json`` is asked instead, so ``dumps`` refuses what ``json.dumps`` refuses
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def loads(text: str | bytes) -> Any:
    """Decode JSON as ``json.loads`` does."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dumps(value: Any) -> bytes:
    """Encode JSON's own types (dicts, lists, strings, numbers, booleans, None) as UTF-8, as
    ``json.dumps(value, ensure_ascii=False)`` does but without its spaces; a value ``json``
    cannot encode raises ``TypeError`` (a UUID or an Enum aside: orjson writes its text or value)."""
    try:
        return orjson.dumps(value, option=_STRICT)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def message_loads(body: bytes | bytearray | memoryview | str) -> Any:
    """kombu's ``application/json`` decoder: the same values as ``kombu.utils.json.loads``."""
    if isinstance(body, memoryview):
        body = body.tobytes()
    marker = "__type__" if isinstance(body, str) else b"__type__"
    if marker not in body:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # a number beyond 64 bits, NaN, or not JSON: kombu decides
    return kombu_json.loads(body)


def install() -> None:
    """Decode this process's JSON messages with ``message_loads``; encoding stays kombu's."""
    kombu.serialization.register("json", kombu_json.dumps, message_loads,
                                 content_type="application/json", content_encoding="utf-8")
