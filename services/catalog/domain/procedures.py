"""Procedures: what an amendment makes of one (a new version, or a draft rewritten) and the
agreement of its levels with the agency kinds that implement it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal_common.errors import Conflict, InvalidInput
from services.catalog.domain.agencies import level_of_kind


def amended(current: Mapping[str, Any], changes: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The next version of a procedure: the changes applied, the list of what changed. A
    draft keeps its version number: it is rewritten, not versioned, until published."""
    if current["status"] == "withdrawn":
        raise Conflict("procedure_withdrawn", "A withdrawn procedure cannot be amended.")
    changed = sorted(k for k, v in changes.items() if current.get(k) != v)
    if not changed:
        raise InvalidInput("nothing_changed", "The amendment changes nothing.")
    doc = dict(current)
    doc.update(changes)
    doc["version"] = int(current["version"]) + (0 if current["status"] == "draft" else 1)
    return doc, changed


def check_procedure(doc: Mapping[str, Any]) -> None:
    """The levels a procedure names are exactly those of the agency kinds that implement it
    (no district kinds: districts were abolished), so a search by level and the choice of
    agency agree."""
    kind_levels = {level_of_kind(k) for k in doc["agency_kinds"]}
    if None in kind_levels:
        raise InvalidInput("invalid_agency_kind", "Agency kinds are central_..., province_... or commune_....")
    if kind_levels != set(doc["levels"]):
        raise InvalidInput("levels_mismatch", "levels must be the levels of the agency kinds "
                           f"({', '.join(sorted(kind_levels))}).")
