"""Who may see and do what with a dossier, and how staff appear to the applicant.

A caller is an applicant (the owner's account), an agency (its code), the system (the overdue
job, built only in-process) or anonymous (sees nothing: operators read no dossier). Another
applicant's dossier, or one never routed to the caller's agency, is answered exactly like an
unknown code, so its existence does not leak.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from services.dossier.domain.lifecycle import AGENCY_COMMANDS, APPLICANT_COMMANDS, SYSTEM_COMMANDS, DossierState

STAFF_KINDS = ("officer", "agency_system")


@dataclass(frozen=True)
class Caller:
    """Whose request this is: an applicant (owner id) or an agency (its code), or the system."""

    kind: str  # "applicant" | "agency" | "system" | "anonymous"
    account_id: str | None = None
    agency_code: str | None = None

    @classmethod
    def from_context(cls, context: dict[str, Any] | None) -> Caller:
        actor = (context or {}).get("actor") or {}
        role = actor.get("kind")
        if role in ("citizen", "business"):
            return cls("applicant", account_id=str(actor.get("id")))
        if role in STAFF_KINDS and actor.get("agency_code"):
            return cls("agency", account_id=str(actor.get("id")), agency_code=str(actor["agency_code"]))
        return cls("anonymous")  # sees nothing: the system caller is only ever built in-process

    def can_see(self, state: DossierState) -> bool:
        """Owner, or an agency the dossier was routed to, or the system."""
        if self.kind == "applicant":
            return state.owner.get("account_id") == self.account_id
        if self.kind == "agency":
            return self.agency_code in state.agencies
        return self.kind == "system"

    def can_act(self, state: DossierState, command: str) -> bool:
        if self.kind == "applicant":
            return command in APPLICANT_COMMANDS and self.can_see(state)
        if self.kind == "agency":
            return command in AGENCY_COMMANDS and state.agency_code == self.agency_code
        return self.kind == "system" and command in SYSTEM_COMMANDS


SYSTEM_CALLER = Caller("system")


def staff_ref(account_id: str) -> str:
    """An opaque, stable reference to a staff account: the same person shows the same
    reference on every dossier, but the citizen never learns the account id."""
    return hashlib.sha256(f"dossier-access:{account_id}".encode()).hexdigest()[:12]


def owner_timeline(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline as its owner sees it: staff named by agency, kind and ``staff_ref`` (as in
    the access log), never by account id."""
    out = []
    for entry in timeline:
        actor = entry.get("actor")
        if isinstance(actor, dict) and actor.get("kind") in (*STAFF_KINDS, "operator") and actor.get("id"):
            entry = {**entry, "actor": {"kind": actor["kind"], "agency_code": actor.get("agency_code"),
                                        "staff_ref": staff_ref(str(actor["id"]))}}
        out.append(entry)
    return out
