"""Dossier codes: ``<AGENCY>-<YYMMDD>-<NNNN>``, readable over the phone and unique.

The sequence is per receiving agency and per local day; the repository draws it from a
counter row incremented inside the submit transaction, so a rolled-back submit gives its
number back and two submits can never get the same one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

CODE_RE = re.compile(r"^(?P<agency>[A-Za-z0-9._-]{1,60})-(?P<day>\d{6})-(?P<seq>\d{4,})$")


def format_code(agency_code: str, day: dt.date, sequence: int) -> str:
    """The code of the ``sequence``-th dossier an agency received on ``day``."""
    if sequence < 1:
        raise ValueError("sequence starts at 1")
    return f"{agency_code}-{day:%y%m%d}-{sequence:04d}"


def parse_code(code: str) -> tuple[str, dt.date, int] | None:
    """(agency, day, sequence) of a well-formed code, None for anything else (non-text included)."""
    if not isinstance(code, str):
        return None
    match = CODE_RE.fullmatch(code)
    if not match:
        return None
    try:
        day = dt.datetime.strptime(match["day"], "%y%m%d").date()
    except ValueError:
        return None
    return match["agency"], day, int(match["seq"])


def looks_like_code(code: str) -> bool:
    return parse_code(code) is not None


def stream_id(code: str) -> str:
    return f"dossier-{code}"


def with_code(value: Any, stand_in: str, code: str) -> Any:
    """``value`` (a state, or the dicts, lists and text in it) with ``code`` wherever it holds
    ``stand_in``: what a filing built before its code was drawn, once it is known."""
    if isinstance(value, str):
        return value.replace(stand_in, code) if stand_in in value else value
    if isinstance(value, dict):
        return {with_code(k, stand_in, code): with_code(v, stand_in, code) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(with_code(v, stand_in, code) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: with_code(getattr(value, f.name), stand_in, code)
                                             for f in dataclasses.fields(value) if f.init})
    return value
