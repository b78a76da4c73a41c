"""What the RPCs answer: a dossier's and a draft's views, from their replayed state."""

from __future__ import annotations

from typing import Any

from portal_common.contracts.dossier import national_status_code
from services.dossier.domain.drafts import DraftState
from services.dossier.domain.lifecycle import DossierState


def full_view(state: DossierState) -> dict[str, Any]:
    """The owner's (and handling agency's) view: everything, with the timeline."""
    return {
        "code": state.code, "status": state.status, "national_status_code": national_status_code(state.status),
        "paused": state.paused, "overdue": state.overdue,
        "procedure": state.procedure,
        "agency": {"code": state.agency_code, "name": state.agency_name},
        "agencies": state.agencies, "owner": state.owner, "applicant": state.applicant, "form": state.form,
        "submitted_at": state.submitted_at, "received_at": state.received_at,
        "appointment_date": state.appointment_date.isoformat() if state.appointment_date else None,
        "supplement": state.supplement, "reason": state.reason, "closed_at": state.closed_at,
        "inputs": state.inputs, "outputs": state.outputs, "receipts": state.receipts,
        "payment_requests": [{"id": rid, **r} for rid, r in state.payment_requests.items()],
        "fee_exemptions": exemption_items(state),
        "timeline": state.timeline,
        "version": state.version, "updated_at": state.updated_at,
    }


def exemption_items(state: DossierState) -> list[dict[str, Any]]:
    """Each declared fee exemption: ``status`` exempt (nothing asked for it) or disputed (the agency
    asked for the fee after all: ``request_id`` is the payment request, ``reason`` why)."""
    return [{"fee_id": e["fee_id"], "fee_name": e["fee_name"], "amount": e["amount"], "exemption": e["exemption"],
             "status": e["status"], "declared_at": e["declared_at"], "disputed_at": e["disputed_at"],
             "reason": e["dispute_reason"], "request_id": e["request_id"]} for e in state.exemptions.values()]


def draft_view(state: DraftState) -> dict[str, Any]:
    """The owner's view of a draft."""
    return {"id": state.draft_id, "status": state.status, "version": state.version,
            "procedure_code": state.procedure_code, "agency_code": state.agency_code,
            "applicant": state.applicant, "form": state.form, "documents": state.documents,
            "fee_exemptions": state.fee_exemptions,
            "dossier_code": state.dossier_code, "created_at": state.created_at, "updated_at": state.updated_at}


def empty_page(args: dict[str, Any]) -> dict[str, Any]:
    """The list a caller of the wrong kind gets: nothing, on the page asked for."""
    return {"items": [], "total": 0, "page": args["page"], "page_size": args["page_size"]}


def status_attributes(status: str | None) -> dict[str, Any]:
    """What a published dossier event carries beside its payload: the dossier's status after
    it and the national portal's code of that status (for back offices that sync with it)."""
    return {"dossier_status": status, "national_status_code": national_status_code(status)}


def with_national_code(view: dict[str, Any]) -> dict[str, Any]:
    """A status view or a page of them with the national portal's status code beside ``status``."""
    if isinstance(view.get("items"), list):
        return {**view, "items": [with_national_code(item) for item in view["items"]]}
    return {**view, "national_status_code": national_status_code(view.get("status"))} if "status" in view else view
