"""Field shapes that recur across event payloads, and the text rule every schema shares.

Text must encode as UTF-8: JSON lets a client write a lone surrogate (``"\\ud800"``), which
Python decodes into a ``str`` that cannot be stored, hashed or sent on. ``Utf8Schema`` (a
base for schemas) refuses one anywhere in the input, keys included, naming the field;
``Text`` is a string field with the same rule, and ``refuse_lone_surrogates`` the validator.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate

LONE_SURROGATE_MESSAGE = "Not valid Unicode text: a lone surrogate (such as \\ud800) is not allowed."
LONE_SURROGATE_KEY_MESSAGE = "Not a valid field name: a lone surrogate (such as \\ud800) is not allowed."
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_REPORTED = 20


def is_utf8_text(value: str) -> bool:
    """True when ``value`` encodes as UTF-8 (holds no lone surrogate)."""
    return value.isascii() or _SURROGATE.search(value) is None


def refuse_lone_surrogates(value: Any) -> None:
    """A marshmallow validator: text that does not encode as UTF-8 is refused."""
    if isinstance(value, str) and not is_utf8_text(value):
        raise ValidationError(LONE_SURROGATE_MESSAGE)


def printable_path(parts: tuple) -> str:
    """A field path as text that is itself valid UTF-8 (a bad key is shown escaped)."""
    out = []
    for part in parts:
        text = str(part)
        out.append(text if is_utf8_text(text) else text.encode("utf-8", "backslashreplace").decode("ascii"))
    return ".".join(out) or "_body"


def lone_surrogates(value: Any, also: tuple[type, str] | None = None) -> dict[str, list[str]]:
    """Every place in ``value`` (nested dicts and lists, keys too) holding a lone surrogate,
    as ``{"a.b.0": [message]}``; found without recursion, at most 20 reported. ``also`` is a
    further kind of value to name, with its message (the gateway's non-finite numbers)."""
    extra, extra_message = also or ((), "")
    walked = (str, dict, list, tuple, extra) if also else (str, dict, list, tuple)
    found: dict[str, list[str]] = {}
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack and len(found) < _MAX_REPORTED:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_utf8_text(item):
                found[printable_path(path)] = [LONE_SURROGATE_MESSAGE]
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not is_utf8_text(key):
                    found[printable_path((*path, key))] = [LONE_SURROGATE_KEY_MESSAGE]
                if isinstance(child, walked):
                    stack.append((child, (*path, key)))
        elif isinstance(item, list | tuple):
            stack.extend((child, (*path, i)) for i, child in enumerate(item) if isinstance(child, walked))
        elif also and isinstance(item, extra):
            found[printable_path(path)] = [extra_message]
    return found


class Utf8Schema(Schema):
    """A schema whose input may hold no lone surrogate anywhere (refused before any field
    is read, every bad field named)."""

    @pre_load
    def _refuse_lone_surrogates(self, data: Any, **kwargs: Any) -> Any:
        found = lone_surrogates(data)
        if found:
            raise ValidationError(found)
        return data


class Text(fields.String):
    """A string field whose value must encode as UTF-8."""

    default_error_messages = {"lone_surrogate": LONE_SURROGATE_MESSAGE}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if not is_utf8_text(result):
            raise self.make_error("lone_surrogate")
        return result


class ActorSchema(Utf8Schema):
    """Who caused an event: an applicant, an agency officer or system, an editor, the system."""

    kind = fields.String(
        required=True,
        validate=validate.OneOf(
            ["citizen", "business", "officer", "agency_system", "editor", "operator", "system"]
        ),
    )
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    agency_code = fields.String(allow_none=True, load_default=None)


class EnvelopeSchema(Utf8Schema):
    """The body of every message on a ``<service>.events`` exchange.

    ``event_id`` is the deduplication key: a consumer that stored it has applied the event.
    """

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    schema_version = fields.Integer(required=True)
    stream_id = fields.String(required=True)
    stream_type = fields.String(required=True)
    stream_version = fields.Integer(required=True)
    position = fields.Integer(required=True, metadata={"description": "global position in the producer's log"})
    occurred_at = fields.DateTime(required=True)
    recorded_at = fields.DateTime(required=True)
    correlation_id = fields.String(allow_none=True)
    causation_id = fields.String(allow_none=True)
    actor = fields.Nested(ActorSchema, allow_none=True)
    data = fields.Dict(required=True, metadata={"description": "the payload, per the event's schema"})
    attributes = fields.Dict(
        keys=fields.String(),
        metadata={"description": "what consumers filter on beside the payload, when the producer sets it "
                                 "(dossier events: `dossier_status` and `national_status_code` after the event)"})
