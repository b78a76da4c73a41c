"""Drafts: what an applicant saves before filing, as a small state machine over events.

A draft has no dossier code yet (codes are issued at submission), so it lives on a stream of
its own, ``draft-<uuid>``: saved (any number of times, each event holding the whole draft) →
submitted (naming the dossier code it became) or discarded. A submitted draft answers a
second submission with the same dossier, which makes "submit this draft" safe to retry.

``DossierDraftSaved`` is written in version 2, which adds the fee exemptions the applicant
declares (``fee_exemptions``, checked against the procedure only at filing); a version 1 event,
saved before drafts could hold them, reads as declaring none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from portal_common.contracts.dossier import DRAFT_STATUSES  # declared once, for the gateway too
from portal_common.errors import Conflict
from services.dossier.domain.lifecycle import _copy, _iso  # the same fold helpers as the dossier's

OPEN, SUBMITTED, DISCARDED = DRAFT_STATUSES
EVENT_TYPES = ("DossierDraftSaved", "DossierDraftSubmitted", "DossierDraftDiscarded")

# command -> the draft statuses it is allowed in (None: the draft does not exist yet)
ALLOWED: dict[str, frozenset[str | None]] = {
    "save": frozenset({None, OPEN}),
    "submit": frozenset({OPEN}),
    "discard": frozenset({OPEN}),
}


@dataclass
class DraftState:
    """A draft after the events replayed so far."""

    draft_id: str | None = None
    version: int = 0
    status: str | None = None
    owner: dict[str, Any] = field(default_factory=dict)
    procedure_code: str | None = None
    agency_code: str | None = None
    applicant: dict[str, Any] = field(default_factory=dict)
    form: dict[str, Any] = field(default_factory=dict)
    documents: list[dict[str, Any]] = field(default_factory=list)
    fee_exemptions: list[dict[str, Any]] = field(default_factory=list)
    dossier_code: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def exists(self) -> bool:
        return self.version > 0


def evolve(state: DraftState, event_type: str, data: dict[str, Any], at: dt.datetime,
           actor: dict[str, Any] | None = None, keep_timeline: bool = True) -> DraftState:
    """The draft after one more event (a new object); same signature as the dossier's fold."""
    s = _copy(state)
    s.version = state.version + 1
    s.updated_at = _iso(at)
    if event_type == "DossierDraftSaved":
        s.draft_id = data["draft_id"]
        s.status = OPEN
        s.owner = dict(data["owner"])
        s.procedure_code = data.get("procedure_code")
        s.agency_code = data.get("agency_code")
        s.applicant = dict(data.get("applicant") or {})
        s.form = dict(data.get("form") or {})
        s.documents = [dict(d) for d in data.get("documents") or []]
        s.fee_exemptions = declared_exemptions(data)
        s.created_at = state.created_at or s.updated_at
    elif event_type == "DossierDraftSubmitted":
        s.status, s.dossier_code = SUBMITTED, data["code"]
    elif event_type == "DossierDraftDiscarded":
        s.status = DISCARDED
    else:
        raise ValueError(f"not a draft event: {event_type}")
    return s


def declared_exemptions(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``[{fee_id, exemption}]`` a DossierDraftSaved declares: none in a version 1 event."""
    return [{"fee_id": c["fee_id"], "exemption": c["exemption"]} for c in data.get("fee_exemptions") or []]


def replay(events: list[Any]) -> DraftState:
    state = DraftState()
    for event in events:
        state = evolve(state, event.event_type, event.data, event.occurred_at)
    return state


def check(state: DraftState, command: str) -> None:
    """Raise Conflict("transition_not_allowed") unless ``command`` may run on this draft."""
    if state.status not in ALLOWED[command]:
        raise Conflict("transition_not_allowed", f"'{command}' is not allowed on a {state.status} draft.",
                       {"state": state.status, "command": f"{command}_draft"})


def saved_event(state: DraftState, draft_id: str, owner: dict[str, Any], content: dict[str, Any],
                documents: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The event that records the draft's whole content as it is now."""
    check(state, "save")
    return ("DossierDraftSaved", {
        "draft_id": draft_id, "owner": owner,
        "procedure_code": content.get("procedure_code"), "agency_code": content.get("agency_code"),
        "applicant": content.get("applicant") or {}, "form": content.get("form") or {},
        "documents": documents,
        "fee_exemptions": declared_exemptions(content),
    })


def submitted_event(state: DraftState, code: str) -> tuple[str, dict[str, Any]]:
    check(state, "submit")
    return ("DossierDraftSubmitted", {"draft_id": state.draft_id, "code": code})


def discarded_event(state: DraftState) -> tuple[str, dict[str, Any]]:
    check(state, "discard")
    return ("DossierDraftDiscarded", {"draft_id": state.draft_id})
