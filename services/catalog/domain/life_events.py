"""Life events: their amendments and the procedures they may list (offered, and meant for
the same kind of applicant)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal_common.errors import Conflict, InvalidInput


def amended_life_event(current: Mapping[str, Any], changes: Mapping[str, Any]
                       ) -> tuple[dict[str, Any], list[str]]:
    """The next version of a life event and what changed (a new order of the same procedures
    is a change); a retired one stays as it was retired."""
    if current["status"] == "retired":
        raise Conflict("life_event_retired", "A retired life event cannot be amended.")
    changed = sorted(k for k, v in changes.items() if current.get(k) != v)
    if not changed:
        raise InvalidInput("nothing_changed", "The amendment changes nothing.")
    return dict(current, **changes, version=int(current["version"]) + 1), changed


def unoffered_procedures(codes: list[str], statuses: Mapping[str, str]) -> list[dict[str, str]]:
    """One field error per listed procedure the catalog does not have or has withdrawn (every
    one of them, so the editor fixes the list at once); ``statuses`` maps the known codes."""
    errors = []
    for i, code in enumerate(codes):
        status = statuses.get(code)
        if status is None or status == "withdrawn":
            why = "is not in the catalog" if status is None else "has been withdrawn"
            errors.append({"field": f"procedure_codes[{i}]", "message": f"Procedure {code} {why}."})
    return errors


_APPLICANTS = {"citizen": "citizens", "business": "businesses"}


def mistargeted_procedures(codes: list[str], targets: Mapping[str, str], event_target: str) -> list[dict[str, str]]:
    """One field error per listed procedure meant only for the other kind of applicant: a
    business's life event lists procedures for businesses (or both), a citizen's for citizens."""
    errors = []
    for i, code in enumerate(codes):
        target = targets.get(code)
        if target is not None and target not in (event_target, "both"):
            errors.append({"field": f"procedure_codes[{i}]",
                           "message": f"Procedure {code} is for {_APPLICANTS[target]} only, "
                                      f"not for {_APPLICANTS.get(event_target, event_target)}."})
    return errors
