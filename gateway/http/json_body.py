"""JSON request bodies, parsed one way under the gateway's limits.

Every JSON body the gateway reads goes through ``parse`` (``route.py`` for an endpoint's
body, ``GatewayRequest.get_json`` for a handler that reads the body again):

- not UTF-8 (or UTF-16/32, as ``json`` detects them) or not JSON: 400 ``invalid_json``;
- nested deeper than ``MAX_JSON_DEPTH`` (``[`` and ``{`` together): 400 ``json_too_deep``,
  found before the parser sees it by a scan that neither recurses nor loops per character
  (brackets that do not pair up: 400 ``invalid_json`` there and then);
- well-formed but holding what no service can store: 422 ``validation_failed`` naming each
  field (``applicant.full_name``): a lone surrogate (``"\\ud800"``) in a key or a string,
  and a number that is not finite (``NaN``, ``Infinity``, ``-Infinity``, or ``1e400``,
  which overflows to infinity).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from marshmallow import ValidationError
from werkzeug.wrappers import Request

from gateway.http.limits import MAX_JSON_DEPTH
from portal_common.contracts.fields import lone_surrogates
from portal_common.errors import ServiceError

NOT_FINITE_MESSAGE = "Not a finite number: NaN, Infinity and numbers too large for a double are not allowed."

# A JSON string, or an unterminated one with all that follows it. Possessive, and a failed
# string swallows the rest: one pass over the text whatever it holds (never quadratic).
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|"[\s\S]*')
# Opening brackets become +1, closing ones -1 (as signed bytes), everything else goes.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")
# Where a lone surrogate can come from once the body decoded: a \uD800-\uDFFF escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _NotFinite:
    """What the parser returns for a non-finite number, so the field holding it can be named."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class _Numbers:
    """``json.loads`` hooks that turn each non-finite number into a ``_NotFinite`` and count them."""

    def __init__(self) -> None:
        self.refused = 0

    def constant(self, text: str) -> _NotFinite:  # NaN, Infinity, -Infinity
        self.refused += 1
        return _NotFinite(text)

    def number(self, text: str) -> float | _NotFinite:
        value = float(text)
        if math.isfinite(value):
            return value
        self.refused += 1
        return _NotFinite(text)


def depth_of(raw: bytes) -> int | None:
    """How deep the JSON text ``raw`` (UTF-8) nests; ``None`` when its brackets do not pair up
    (then it is not JSON).

    No recursion and no Python loop per character: strings are cut out, each bracket left
    becomes +1 or -1, and the deepest point is the largest running sum (``accumulate``, in C).
    """
    steps = _STRINGS.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    if not steps:
        return 0
    if steps.count(1) * 2 != len(steps):
        return None
    return max(accumulate(memoryview(steps).cast("b")))


def _decode(data: bytes | str) -> tuple[str, bytes]:
    """The body as text, and as UTF-8 bytes for the depth scan."""
    if isinstance(data, str):
        return data, data.encode("utf-8", "surrogatepass")
    try:
        encoding = json.detect_encoding(data)
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ServiceError("invalid_json", "The body is not valid JSON.") from None
    return text, (data if encoding in ("utf-8", "utf-8-sig") else text.encode("utf-8", "surrogatepass"))


def unacceptable(value: Any) -> dict[str, list[str]]:
    """Each field of a parsed body holding a lone surrogate or a non-finite number (keys too),
    as ``{"applicant.full_name": [message]}``, in field order; at most 20 reported."""
    return dict(sorted(lone_surrogates(value, also=(_NotFinite, NOT_FINITE_MESSAGE)).items()))


def parse(data: bytes | str, max_depth: int | None = None) -> Any:
    """The body as Python values; an empty body is ``None``.

    Raises ``ServiceError`` (400 ``invalid_json`` or ``json_too_deep``) when it cannot be
    read, and marshmallow's ``ValidationError`` (422, every bad field) when it holds values
    no service accepts.
    """
    limit = MAX_JSON_DEPTH if max_depth is None else max_depth
    if not data:
        return None
    text, raw = _decode(data)
    # A body cannot nest deeper than it has opening brackets (those inside strings counted too),
    # and counting them takes a pass in C: most bodies (a filing's documents are one long string
    # each) skip the scan, which cost a 32 KB filing 170 µs. Brackets that do not pair up are
    # then refused by the parser, with the same ``invalid_json``.
    if raw.count(b"[") + raw.count(b"{") > limit:
        depth = depth_of(raw)
        if depth is None:
            raise ServiceError("invalid_json", "The body is not valid JSON.")
        if depth > limit:
            raise ServiceError("json_too_deep", f"The JSON body is nested more than {limit} levels deep.",
                               {"max_depth": limit})
    numbers = _Numbers()
    try:
        payload = json.loads(text, parse_constant=numbers.constant, parse_float=numbers.number)
    except RecursionError:  # cannot happen below the depth limit; kept so it never becomes a 500
        raise ServiceError("json_too_deep", f"The JSON body is nested more than {limit} levels deep.",
                           {"max_depth": limit}) from None
    except ValueError:  # JSONDecodeError, and integers longer than Python converts
        raise ServiceError("invalid_json", "The body is not valid JSON.") from None
    if numbers.refused or _SURROGATE_ESCAPE.search(text):  # only then is there anything to find
        found = unacceptable(payload)
        if found:
            raise ValidationError(found)
    return payload


class _SafeJson:
    """``json`` as werkzeug's ``Request.json_module``: ``loads`` is ``parse``."""

    @staticmethod
    def loads(data: bytes | str, **kwargs: Any) -> Any:
        return parse(data)

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)


class GatewayRequest(Request):
    """The gateway's request: ``get_json`` parses under the same limits (and caches)."""

    json_module = _SafeJson


def read_json(request: Request) -> Any:
    """The request's JSON body under the limits, parsed once: a handler's later
    ``request.get_json()`` returns the same value."""
    if isinstance(request, GatewayRequest):
        return request.get_json(force=True)
    return parse(request.get_data(cache=True))
