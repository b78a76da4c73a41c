"""The dossier lifecycle as a pure state machine over events.

A dossier's state is never stored as truth: ``replay`` folds its stream of events into a
``DossierState``, and a command (``decide``) looks at that state and either returns the
events it causes or raises ``Conflict("transition_not_allowed")`` having decided nothing.
The table ``ALLOWED`` is the whole lifecycle at a glance; the guards beside it (paused,
overdue) refine it.

    submitted ─receive─▶ received ─start_processing─▶ processing ─result─▶ result_ready ─return─▶ returned
        └─refuse─▶ refused        request_supplement ⇄ supplement; forward (inter-agency);
    reject / withdraw (before a result); pause ⇄ resume (the clock stops); extend when overdue.

Payment: a procedure whose fees are due before reception files into ``awaiting_payment``
(then ``submitted`` once paid); an agency's ``request_payment`` during processing moves the
dossier to ``awaiting_payment`` and stops its clock until ``payment_received`` (the payment
service's confirmation) moves it back and the appointment by the working days lost; an unpaid
obligation past its due date becomes ``payment_expired``, where the agency decides (refuse,
reject, or ask again). Those two and ``attach_receipt`` are the system's commands, run when
the payment service's events arrive.

Exemptions: at filing the applicant may declare belonging to a group a fee lists in its
``exemptions``; the fee is then not requested (``FeeExemptionDeclared`` follows
``DossierSubmitted``). The agency holding the dossier may dispute it while the dossier is open
(``dispute_exemption``): ``FeeExemptionDisputed`` and a ``DossierPaymentRequested`` for the fee,
blocking when the fee is due before reception, as at filing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from portal_common.contracts.dossier import STATUSES  # declared once, for the gateway too
from portal_common.errors import Conflict, InvalidInput
from services.dossier.domain.calendar import (
    add_working_days,
    local_date,
    working_days_between,
)

(SUBMITTED, RECEIVED, REFUSED, PROCESSING, SUPPLEMENT_REQUESTED, SUPPLEMENTED, FORWARDED, RESULT_READY,
 RETURNED, REJECTED, WITHDRAWN, AWAITING_PAYMENT, PAYMENT_EXPIRED) = STATUSES
# Being handled by an agency: the clock runs, the dossier can become overdue.
ACTIVE = frozenset({RECEIVED, PROCESSING, SUPPLEMENT_REQUESTED, SUPPLEMENTED, FORWARDED})
FINAL = frozenset({REFUSED, RETURNED, REJECTED, WITHDRAWN})

# command -> the statuses it is allowed in (before the paused / overdue guards)
ALLOWED: dict[str, frozenset[str]] = {
    "receive": frozenset({SUBMITTED}),
    "refuse": frozenset({SUBMITTED, AWAITING_PAYMENT, PAYMENT_EXPIRED}),  # the latter two before reception
    "start_processing": frozenset({RECEIVED, SUPPLEMENTED, FORWARDED}),
    "request_supplement": frozenset({RECEIVED, PROCESSING, SUPPLEMENTED, FORWARDED}),
    "supplement": frozenset({SUPPLEMENT_REQUESTED}),
    "forward": frozenset({RECEIVED, PROCESSING, SUPPLEMENTED}),
    "pause": frozenset({RECEIVED, PROCESSING, SUPPLEMENTED, FORWARDED}),
    "resume": ACTIVE,
    "extend": ACTIVE,
    "result": frozenset({RECEIVED, PROCESSING, SUPPLEMENTED, FORWARDED}),
    "return_result": frozenset({RESULT_READY}),
    "reject": ACTIVE | {AWAITING_PAYMENT, PAYMENT_EXPIRED},
    "withdraw": frozenset({SUBMITTED, AWAITING_PAYMENT, PAYMENT_EXPIRED}) | ACTIVE,
    "mark_overdue": ACTIVE,
    "request_payment": frozenset({RECEIVED, PROCESSING, SUPPLEMENTED, FORWARDED, PAYMENT_EXPIRED}),
    "payment_received": frozenset(STATUSES) - FINAL,
    "payment_expired": frozenset({AWAITING_PAYMENT}),
    "attach_receipt": frozenset(STATUSES),
    "dispute_exemption": frozenset(STATUSES) - FINAL,
}
# Before reception, refuse also ends a dossier waiting for (or past due on) its filing fees.
PRE_RECEPTION_PAYMENT = frozenset({AWAITING_PAYMENT, PAYMENT_EXPIRED})
COMMANDS = tuple(ALLOWED)
# While paused only these may happen (everything else waits for ``resume``).
WHILE_PAUSED = frozenset({"resume", "reject", "withdraw", "payment_received", "attach_receipt"})
APPLICANT_COMMANDS = frozenset({"supplement", "withdraw"})
SYSTEM_COMMANDS = frozenset({"mark_overdue", "payment_received", "payment_expired", "attach_receipt"})
AGENCY_COMMANDS = frozenset(COMMANDS) - APPLICANT_COMMANDS - SYSTEM_COMMANDS

EVENT_TYPES = (
    "DossierSubmitted", "DossierReceived", "DossierRefused", "DossierProcessingStarted",
    "SupplementRequested", "DossierSupplemented", "DossierForwarded", "DossierPaused",
    "DossierResumed", "DeadlineExtended", "DossierResultReady", "DossierResultReturned",
    "DossierRejected", "DossierWithdrawn", "DossierBecameOverdue",
    "DossierPaymentRequested", "DossierPaymentReceived", "DossierPaymentExpired", "DossierReceiptAttached",
    "FeeExemptionDeclared", "FeeExemptionDisputed",
)
FEE_DUE_MOMENTS = ("before_reception", "with_reception", "with_result")


@dataclass
class DossierState:
    """What a dossier looks like after the events replayed so far."""

    code: str | None = None
    version: int = 0
    status: str | None = None
    owner: dict[str, Any] = field(default_factory=dict)
    applicant: dict[str, Any] = field(default_factory=dict)
    form: dict[str, Any] = field(default_factory=dict)
    procedure: dict[str, Any] = field(default_factory=dict)
    agency_code: str | None = None
    agency_name: str | None = None
    agencies: list[str] = field(default_factory=list)
    submitted_at: str | None = None
    received_at: str | None = None
    appointment_date: dt.date | None = None
    paused_on: dt.date | None = None
    overdue: bool = False
    supplement: dict[str, Any] | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    closed_at: str | None = None
    updated_at: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # request_id -> {amount, status: open | paid | expired, blocking, due_date}
    payment_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_return_status: str | None = None  # where a waiting dossier goes once paid
    clock_stopped_on: dt.date | None = None  # awaiting a payment during processing
    receipts: list[dict[str, Any]] = field(default_factory=list)
    # fee_id -> {fee_id, fee_name, amount, exemption, due, declared_at, status: exempt | disputed,
    #            disputed_at, dispute_reason, request_id}
    exemptions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def open_blocking_requests(self) -> list[str]:
        return [rid for rid, r in self.payment_requests.items() if r["status"] == "open" and r["blocking"]]

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def paused(self) -> bool:
        return self.paused_on is not None

    def is_overdue_on(self, today: dt.date) -> bool:
        """Past the appointment date while still being handled (and the clock running)."""
        return (self.status in ACTIVE and not self.paused and self.appointment_date is not None
                and today > self.appointment_date)


# -- replaying events ------------------------------------------------------------------


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _copy(state: Any) -> Any:
    """A shallow copy of a state (``copy.copy`` without its generic protocol: replay copies
    once per event)."""
    s = object.__new__(type(state))
    s.__dict__.update(state.__dict__)
    return s


def evolve(state: DossierState, event_type: str, data: dict[str, Any], at: dt.datetime,
           actor: dict[str, Any] | None = None, keep_timeline: bool = True) -> DossierState:
    """The state after one more event (a new object; ``state`` is left untouched).

    ``at`` is the event's ``occurred_at``, which the command chose, so the state a command
    computes before appending equals the state a later replay computes.
    """
    s = _copy(state)
    s.version = state.version + 1
    s.updated_at = _iso(at)
    if keep_timeline:
        s.timeline = [*state.timeline, _timeline_entry(event_type, data, at, actor)]
    if event_type == "DossierSubmitted":
        _step_submitted(s, data, at)  # every field new: the same step as the in-place fold
    elif event_type == "DossierReceived":
        s.status = RECEIVED
        s.received_at = data["received_at"]
        s.appointment_date = _date(data["appointment_date"])
    elif event_type == "DossierRefused":
        s.status, s.reason, s.closed_at = REFUSED, data["reason"], s.updated_at
    elif event_type == "DossierProcessingStarted":
        s.status = PROCESSING
    elif event_type == "SupplementRequested":
        s.status = SUPPLEMENT_REQUESTED
        s.supplement = {"missing": list(data["missing"]), "reason": data["reason"],
                        "due_date": data.get("due_date")}
    elif event_type == "DossierSupplemented":
        s.status = SUPPLEMENTED
        s.supplement = None
        s.inputs = [*state.inputs, *(dict(d, kind="input") for d in data.get("documents", []))]
    elif event_type == "DossierForwarded":
        s.status = FORWARDED
        s.agency_code = data["to_agency"]["code"]
        s.agency_name = data["to_agency"].get("name")
        s.agencies = [*state.agencies, s.agency_code]
    elif event_type == "DossierPaused":
        s.paused_on = _date(data["paused_on"])
    elif event_type == "DossierResumed":
        s.paused_on = None
        s.appointment_date = _date(data.get("appointment_date"))
    elif event_type == "DeadlineExtended":
        s.appointment_date = _date(data["new_date"])
        s.overdue = False
    elif event_type == "DossierResultReady":
        s.status = RESULT_READY
        s.outputs = [*state.outputs, *(dict(d, kind="output") for d in data.get("documents", []))]
    elif event_type == "DossierResultReturned":
        s.status, s.closed_at = RETURNED, s.updated_at
    elif event_type == "DossierRejected":
        s.status, s.reason, s.closed_at = REJECTED, data["reason"], s.updated_at
    elif event_type == "DossierWithdrawn":
        s.status, s.reason, s.closed_at = WITHDRAWN, data.get("reason"), s.updated_at
    elif event_type == "DossierBecameOverdue":
        s.overdue = True
    elif event_type == "DossierPaymentRequested":
        s.payment_requests = {**state.payment_requests, data["request_id"]: {
            "amount": data["amount"], "status": "open", "blocking": data["blocking"],
            "due_date": data.get("due_date"), "reason": data.get("reason")}}
        if data["blocking"]:
            if state.status not in (AWAITING_PAYMENT, PAYMENT_EXPIRED):
                s.payment_return_status = state.status
            s.status = AWAITING_PAYMENT
            if data.get("stopped_on") and state.clock_stopped_on is None:
                s.clock_stopped_on = _date(data["stopped_on"])
    elif event_type == "DossierPaymentReceived":
        s.payment_requests = {rid: (dict(r, status="paid") if rid in data["request_ids"] else r)
                              for rid, r in state.payment_requests.items()}
        if state.status in (AWAITING_PAYMENT, PAYMENT_EXPIRED) and not s.open_blocking_requests:
            s.status = state.payment_return_status or SUBMITTED
            s.payment_return_status = None
            if state.clock_stopped_on is not None:
                s.clock_stopped_on = None
                s.appointment_date = _date(data.get("appointment_date")) or state.appointment_date
    elif event_type == "DossierPaymentExpired":
        s.payment_requests = {rid: (dict(r, status="expired") if rid in data["request_ids"] else r)
                              for rid, r in state.payment_requests.items()}
        s.status = PAYMENT_EXPIRED
    elif event_type == "DossierReceiptAttached":
        s.receipts = [*state.receipts, dict(data["document"], kind="receipt", payment_id=data["payment_id"],
                                            receipt_no=data["receipt_no"])]
    elif event_type == "FeeExemptionDeclared":
        s.exemptions = {**state.exemptions, data["fee_id"]: _declared_exemption(data)}
    elif event_type == "FeeExemptionDisputed":
        s.exemptions = {**state.exemptions, data["fee_id"]: _disputed_exemption(state.exemptions, data)}
    else:
        raise ValueError(f"not a dossier event: {event_type}")
    if s.status in FINAL:
        s.paused_on = None
        s.clock_stopped_on = None
    return s


def _timeline_entry(event_type: str, data: dict[str, Any], at: dt.datetime,
                    actor: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"event": event_type, "at": _iso(at), "actor": _public_actor(actor)}
    for key in ("reason", "note", "appointment_date", "new_date", "previous_date", "missing",
                "due_date", "paused_on", "resumed_on", "amount", "receipt_no", "fee_name", "exemption"):
        if data.get(key) not in (None, "", []):
            entry[key] = data[key]
    if event_type == "DossierForwarded":
        entry["from_agency"] = data["from_agency_code"]
        entry["to_agency"] = data["to_agency"]["code"]
    return entry


def _public_actor(actor: dict[str, Any] | None) -> dict[str, Any] | None:
    if not actor:
        return None
    return {"kind": actor.get("kind"), "id": actor.get("id"), "agency_code": actor.get("agency_code")}


def replay(events: list[Any]) -> DossierState:
    """Fold recorded events (objects with event_type, data, occurred_at, actor) into state."""
    state = DossierState()
    for event in events:
        state = evolve(state, event.event_type, event.data, event.occurred_at, event.actor)
    return state


# -- replaying a whole stream for a rebuild ---------------------------------------------
#
# A rebuild folds every stream of the log once and keeps only the final states, so it needs
# neither a copy of the state per event nor the timeline: ``STEPS`` apply one event to a
# state in place, each the same statements as its branch of ``evolve`` (reads of the state
# before it changes, then the same writes), and ``replay_rows`` folds a stream with them.
# ``updated_at`` and ``version`` are set once per stream (each event's own values are
# overwritten by the next event's); ``closed_at``, which keeps a closing event's time, is set
# by that event's step. A step that raises leaves the state half changed: ``replay_rows``
# then replays that stream with ``evolve``, which raises (or folds) as a replay always has.
# ``tests/dossier/test_replay_rows.py`` holds every event type, odd and hostile payloads
# included, to ``evolve``.


def _step_submitted(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.code = data["code"]
    s.status = SUBMITTED
    s.owner = dict(data["owner"])
    s.applicant = dict(data["applicant"])
    s.form = dict(data.get("form") or {})
    s.procedure = dict(data["procedure"])
    s.agency_code = data["agency"]["code"]
    s.agency_name = data["agency"].get("name")
    s.agencies = [s.agency_code]
    s.submitted_at = data["submitted_at"]
    s.inputs = [dict(d, kind="input") for d in data.get("documents", [])]


def _step_received(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status = RECEIVED
    s.received_at = data["received_at"]
    s.appointment_date = _date(data["appointment_date"])


def _step_refused(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status, s.reason, s.closed_at = REFUSED, data["reason"], _iso(at)


def _step_processing_started(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status = PROCESSING


def _step_supplement_requested(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status = SUPPLEMENT_REQUESTED
    s.supplement = {"missing": list(data["missing"]), "reason": data["reason"], "due_date": data.get("due_date")}


def _step_supplemented(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status = SUPPLEMENTED
    s.supplement = None
    s.inputs = [*s.inputs, *(dict(d, kind="input") for d in data.get("documents", []))]


def _step_forwarded(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status = FORWARDED
    s.agency_code = data["to_agency"]["code"]
    s.agency_name = data["to_agency"].get("name")
    s.agencies = [*s.agencies, s.agency_code]


def _step_paused(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.paused_on = _date(data["paused_on"])


def _step_resumed(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.paused_on = None
    s.appointment_date = _date(data.get("appointment_date"))


def _step_deadline_extended(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.appointment_date = _date(data["new_date"])
    s.overdue = False


def _step_result_ready(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status = RESULT_READY
    s.outputs = [*s.outputs, *(dict(d, kind="output") for d in data.get("documents", []))]


def _step_result_returned(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status, s.closed_at = RETURNED, _iso(at)


def _step_rejected(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status, s.reason, s.closed_at = REJECTED, data["reason"], _iso(at)


def _step_withdrawn(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.status, s.reason, s.closed_at = WITHDRAWN, data.get("reason"), _iso(at)


def _step_became_overdue(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.overdue = True


def _step_payment_requested(s: DossierState, data: Any, at: dt.datetime) -> None:
    previous_status, previous_stop = s.status, s.clock_stopped_on
    s.payment_requests = {**s.payment_requests, data["request_id"]: {
        "amount": data["amount"], "status": "open", "blocking": data["blocking"],
        "due_date": data.get("due_date"), "reason": data.get("reason")}}
    if data["blocking"]:
        if previous_status not in (AWAITING_PAYMENT, PAYMENT_EXPIRED):
            s.payment_return_status = previous_status
        s.status = AWAITING_PAYMENT
        if data.get("stopped_on") and previous_stop is None:
            s.clock_stopped_on = _date(data["stopped_on"])


def _step_payment_received(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.payment_requests = {rid: (dict(r, status="paid") if rid in data["request_ids"] else r)
                          for rid, r in s.payment_requests.items()}
    if s.status in (AWAITING_PAYMENT, PAYMENT_EXPIRED) and not s.open_blocking_requests:
        s.status = s.payment_return_status or SUBMITTED
        s.payment_return_status = None
        if s.clock_stopped_on is not None:
            s.clock_stopped_on = None
            s.appointment_date = _date(data.get("appointment_date")) or s.appointment_date


def _step_payment_expired(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.payment_requests = {rid: (dict(r, status="expired") if rid in data["request_ids"] else r)
                          for rid, r in s.payment_requests.items()}
    s.status = PAYMENT_EXPIRED


def _step_receipt_attached(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.receipts = [*s.receipts, dict(data["document"], kind="receipt", payment_id=data["payment_id"],
                                    receipt_no=data["receipt_no"])]


def _declared_exemption(data: dict[str, Any]) -> dict[str, Any]:
    return {"fee_id": data["fee_id"], "fee_name": data["fee_name"], "amount": data["amount"],
            "exemption": data["exemption"], "due": data.get("due") or "before_reception",
            "declared_at": data["declared_at"], "status": "exempt", "disputed_at": None,
            "dispute_reason": None, "request_id": None}


def _disputed_exemption(exemptions: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return dict(exemptions[data["fee_id"]], status="disputed", disputed_at=data["disputed_at"],
                dispute_reason=data["reason"], request_id=str(data["request_id"]))


def _step_exemption_declared(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.exemptions = {**s.exemptions, data["fee_id"]: _declared_exemption(data)}


def _step_exemption_disputed(s: DossierState, data: Any, at: dt.datetime) -> None:
    s.exemptions = {**s.exemptions, data["fee_id"]: _disputed_exemption(s.exemptions, data)}


# event type -> its step; a type missing here is not a dossier event (``evolve`` raises)
STEPS: dict[str, Any] = {
    "DossierSubmitted": _step_submitted, "DossierReceived": _step_received, "DossierRefused": _step_refused,
    "DossierProcessingStarted": _step_processing_started, "SupplementRequested": _step_supplement_requested,
    "DossierSupplemented": _step_supplemented, "DossierForwarded": _step_forwarded,
    "DossierPaused": _step_paused, "DossierResumed": _step_resumed,
    "DeadlineExtended": _step_deadline_extended, "DossierResultReady": _step_result_ready,
    "DossierResultReturned": _step_result_returned, "DossierRejected": _step_rejected,
    "DossierWithdrawn": _step_withdrawn, "DossierBecameOverdue": _step_became_overdue,
    "DossierPaymentRequested": _step_payment_requested, "DossierPaymentReceived": _step_payment_received,
    "DossierPaymentExpired": _step_payment_expired, "DossierReceiptAttached": _step_receipt_attached,
    "FeeExemptionDeclared": _step_exemption_declared, "FeeExemptionDisputed": _step_exemption_disputed,
}
# the event types whose fold never reads the payload (a rebuild need not decode theirs)
IGNORES_DATA = frozenset({"DossierProcessingStarted", "DossierResultReturned", "DossierBecameOverdue"})


def replay_rows(rows: list[tuple], decode: Any) -> DossierState:
    """A stream's final state from its recorded rows, ``(_, event_type, payload, occurred_at)``
    each in version order, ``decode(payload)`` giving an event's data: what ``replay`` of those
    events gives without their timeline (equal to folding them with ``evolve(...,
    keep_timeline=False)`` from an empty state), each event applied in place and only the
    payloads the fold reads decoded. Should a step raise, the stream is replayed with
    ``evolve``, which raises (or folds) as any replay would."""
    s = DossierState()
    steps, ignores, final = STEPS, IGNORES_DATA, FINAL
    try:
        for _, event_type, payload, at in rows:
            steps[event_type](s, None if event_type in ignores else decode(payload), at)
            if s.status in final:
                s.paused_on = None
                s.clock_stopped_on = None
    except Exception:  # the exact fold decides what an odd event means, or raises
        s = DossierState()
        for _, event_type, payload, at in rows:
            s = evolve(s, event_type, decode(payload), at, keep_timeline=False)
        return s
    if rows:
        s.version = len(rows)
        s.updated_at = _iso(rows[-1][3])
    return s


# -- deciding --------------------------------------------------------------------------


def check(state: DossierState, command: str, today: dt.date | None = None) -> None:
    """Raise Conflict("transition_not_allowed") unless ``command`` may run in ``state``.

    ``extend`` needs an overdue dossier: one the overdue job has marked, or (given ``today``)
    one already past its appointment date that the job has not reached yet.
    """
    if command not in ALLOWED:
        raise InvalidInput("unknown_command", f"Unknown command {command!r}.")
    allowed = state.status in ALLOWED[command]
    if allowed and state.paused and command not in WHILE_PAUSED:
        allowed = False
    if allowed and command == "resume" and not state.paused:
        allowed = False
    if allowed and command == "extend" and not (state.overdue or (today and state.is_overdue_on(today))):
        allowed = False
    if allowed and command == "mark_overdue" and state.overdue:
        allowed = False
    if allowed and command == "refuse" and state.status in PRE_RECEPTION_PAYMENT:
        allowed = state.payment_return_status == SUBMITTED
    if not allowed:
        raise Conflict(
            "transition_not_allowed",
            f"'{command}' is not allowed while the dossier is {state.status}"
            + (" and paused" if state.paused else "") + ".",
            {"state": state.status, "command": command, "paused": state.paused,
             "overdue": state.overdue},
        )


def _text(args: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("missing_field", f"'{key}' is required.", [{"field": key, "message": "required"}])
        return None
    return str(value).strip()


# The event each command's decision ends with: what a repeat of the same request finds last.
LAST_EVENT_OF: dict[str, str] = {
    "receive": "DossierReceived", "refuse": "DossierRefused", "start_processing": "DossierProcessingStarted",
    "request_supplement": "SupplementRequested", "supplement": "DossierSupplemented",
    "forward": "DossierForwarded", "pause": "DossierPaused", "resume": "DossierResumed",
    "extend": "DeadlineExtended", "result": "DossierResultReady", "return_result": "DossierResultReturned",
    "reject": "DossierRejected", "withdraw": "DossierWithdrawn", "mark_overdue": "DossierBecameOverdue",
    "request_payment": "DossierPaymentRequested", "payment_received": "DossierPaymentReceived",
    "payment_expired": "DossierPaymentExpired", "attach_receipt": "DossierReceiptAttached",
    "dispute_exemption": "DossierPaymentRequested",
}


def is_repeat(last_event: Any, command: str, correlation_id: str | None, actor_id: str | None) -> bool:
    """Whether ``command`` is a request that was already applied: the stream's last event is
    the one the command ends with, written for the same request (correlation id) by the same
    actor. A request runs again when its reply was lost (a broker restart redelivers the RPC)
    or a client retries it with the same ``X-Request-ID``; it then answers the state it made
    instead of refusing its own transition."""
    if last_event is None or not correlation_id or LAST_EVENT_OF.get(command) != last_event.event_type:
        return False
    meta = last_event.metadata or {}
    actor = meta.get("actor") or {}
    return meta.get("correlation_id") == correlation_id and actor.get("id") == actor_id


def decide(state: DossierState, command: str, args: dict[str, Any], now: dt.datetime) -> list[tuple[str, dict]]:
    """The events ``command`` causes on ``state`` at ``now`` (raises and decides nothing if refused)."""
    today = local_date(now)
    check(state, command, today)
    code = state.code
    agency = state.agency_code
    if command == "receive":
        days = int(state.procedure.get("processing_days") or 0)
        appointment = add_working_days(today, days)
        return [("DossierReceived", {"code": code, "agency_code": agency, "received_at": _iso(now),
                                     "processing_days": days, "appointment_date": appointment.isoformat(),
                                     "note": _text(args, "note", False)})]
    if command == "refuse":
        return [("DossierRefused", {"code": code, "agency_code": agency, "reason": _text(args, "reason")})]
    if command == "start_processing":
        return [("DossierProcessingStarted", {"code": code, "agency_code": agency,
                                              "note": _text(args, "note", False)})]
    if command == "request_supplement":
        missing = [str(m).strip() for m in (args.get("missing") or []) if str(m).strip()]
        if not missing:
            raise InvalidInput("missing_field", "List what is missing.", [{"field": "missing", "message": "required"}])
        due = args.get("due_date")
        if due is not None and due < today:
            raise InvalidInput("invalid_date", "The due date is in the past.",
                               [{"field": "due_date", "message": "past"}])
        return [("SupplementRequested", {"code": code, "agency_code": agency, "missing": missing,
                                         "reason": _text(args, "reason"),
                                         "due_date": due.isoformat() if due else None})]
    if command == "supplement":
        documents = list(args.get("documents") or [])
        note = _text(args, "note", False)
        if not documents and not note:
            raise InvalidInput("empty_supplement", "Attach documents or write a note.")
        return [("DossierSupplemented", {"code": code, "documents": documents, "note": note})]
    if command == "forward":
        target = args.get("to_agency") or {}
        if not target.get("code") or target["code"] == agency:
            raise InvalidInput("invalid_agency", "Forward to another agency.",
                               [{"field": "to_agency", "message": "invalid"}])
        return [("DossierForwarded", {
            "code": code, "from_agency_code": agency, "to_agency": target,
            "reason": _text(args, "reason"), "procedure": state.procedure,
            "owner": state.owner, "applicant": state.applicant, "form": state.form,
            "documents": [_doc_ref(d) for d in state.inputs],
            "received_at": state.received_at,
            "appointment_date": state.appointment_date.isoformat() if state.appointment_date else None,
        })]
    if command == "pause":
        return [("DossierPaused", {"code": code, "agency_code": agency, "reason": _text(args, "reason"),
                                   "paused_on": today.isoformat()})]
    if command == "resume":
        lost = working_days_between(state.paused_on, today)
        appointment = state.appointment_date
        if appointment is not None and lost:
            appointment = add_working_days(appointment, lost)
        return [("DossierResumed", {"code": code, "agency_code": agency, "resumed_on": today.isoformat(),
                                    "paused_working_days": lost,
                                    "appointment_date": appointment.isoformat() if appointment else None,
                                    "note": _text(args, "note", False)})]
    if command == "extend":
        new_date = args.get("new_date")
        if new_date is None or new_date <= today or (state.appointment_date and new_date <= state.appointment_date):
            raise InvalidInput("invalid_date", "The new date must be later than today and the old date.",
                               [{"field": "new_date", "message": "must be later"}])
        previous = state.appointment_date.isoformat() if state.appointment_date else None
        extended = ("DeadlineExtended", {"code": code, "agency_code": agency, "previous_date": previous,
                                         "new_date": new_date.isoformat(), "reason": _text(args, "reason")})
        if state.overdue:
            return [extended]
        # past due before the periodic job noticed: record the lateness too, so that every
        # extension in the log follows the overdue event it apologises for
        return [_became_overdue(code, agency, state, today), extended]
    if command == "result":
        return [("DossierResultReady", {"code": code, "agency_code": agency,
                                        "documents": list(args.get("documents") or []),
                                        "note": _text(args, "note", False)})]
    if command == "return_result":
        return [("DossierResultReturned", {"code": code, "agency_code": agency, "returned_at": _iso(now),
                                           "note": _text(args, "note", False)})]
    if command == "reject":
        return [("DossierRejected", {"code": code, "agency_code": agency, "reason": _text(args, "reason")})]
    if command == "withdraw":
        return [("DossierWithdrawn", {"code": code, "reason": _text(args, "reason", False)})]
    if command == "request_payment":
        due = args.get("due_date")
        if due is not None and due < today:
            raise InvalidInput("invalid_date", "The due date is in the past.",
                               [{"field": "due_date", "message": "past"}])
        amount = args.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InvalidInput("invalid_amount", "The amount is a positive number of VND.",
                               [{"field": "amount", "message": "positive integer"}])
        reason = _text(args, "reason")
        return [payment_requested_event(
            state, request_id=str(args["request_id"]), amount=amount, reason=reason,
            fees=[{"id": f"obligation-{str(args['request_id'])[:8]}", "name": reason[:200], "amount": amount,
                   "basis": "fixed", "copies": 1}],
            due_date=due, blocking=True, stopped_on=today if state.appointment_date else None)]
    if command == "payment_received":
        ids = [rid for rid in args.get("request_ids") or []
               if state.payment_requests.get(rid, {}).get("status") in ("open", "expired")]
        if not ids:
            raise Conflict("nothing_to_apply", "The payment's requests are paid already or unknown.",
                           {"state": state.status, "command": command})
        data: dict[str, Any] = {"code": code, "agency_code": agency, "request_ids": ids,
                                "payment_id": str(args["payment_id"]), "amount": int(args["amount"]),
                                "resumed_on": None, "paused_working_days": None, "appointment_date": None}
        still_open = [rid for rid in state.open_blocking_requests if rid not in ids]
        if state.clock_stopped_on is not None and not still_open:
            lost = working_days_between(state.clock_stopped_on, today)
            appointment = state.appointment_date
            if appointment is not None and lost:
                appointment = add_working_days(appointment, lost)
            data.update(resumed_on=today.isoformat(), paused_working_days=lost,
                        appointment_date=appointment.isoformat() if appointment else None)
        return [("DossierPaymentReceived", data)]
    if command == "payment_expired":
        ids = [rid for rid in args.get("request_ids") or []
               if state.payment_requests.get(rid, {}).get("status") == "open"]
        if not ids:
            raise Conflict("nothing_to_apply", "The requests are not open.",
                           {"state": state.status, "command": command})
        return [("DossierPaymentExpired", {"code": code, "agency_code": agency, "request_ids": ids,
                                           "due_date": args.get("due_date")})]
    if command == "attach_receipt":
        if any(r.get("payment_id") == str(args["payment_id"]) for r in state.receipts):
            raise Conflict("nothing_to_apply", "The receipt is attached already.",
                           {"state": state.status, "command": command})
        return [("DossierReceiptAttached", {"code": code, "payment_id": str(args["payment_id"]),
                                            "receipt_no": args["receipt_no"], "document": args["document"]})]
    if command == "dispute_exemption":
        return dispute_exemption(state, args, now, today)
    if command == "mark_overdue":
        if not state.is_overdue_on(today):
            raise Conflict("not_overdue", "The dossier is not past its appointment date.",
                           {"state": state.status, "command": command})
        return [_became_overdue(code, agency, state, today)]
    raise AssertionError(command)  # pragma: no cover - check() knows every command


def _became_overdue(code: str | None, agency: str | None, state: DossierState,
                    today: dt.date) -> tuple[str, dict]:
    return ("DossierBecameOverdue", {"code": code, "agency_code": agency,
                                     "appointment_date": state.appointment_date.isoformat(),
                                     "detected_on": today.isoformat()})


def payment_requested_event(state: DossierState, *, request_id: str, amount: int, reason: str | None,
                            fees: list[dict[str, Any]], due_date: dt.date | None, blocking: bool,
                            stopped_on: dt.date | None = None) -> tuple[str, dict]:
    """What the dossier owes: fees at filing, or an obligation found during processing."""
    return ("DossierPaymentRequested", {
        "code": state.code, "agency_code": state.agency_code, "agency_name": state.agency_name,
        "request_id": request_id, "owner": state.owner, "payer_name": state.applicant.get("full_name"),
        "amount": amount,
        "fees": fees, "reason": reason, "due_date": due_date.isoformat() if due_date else None,
        "blocking": blocking, "stopped_on": stopped_on.isoformat() if stopped_on else None})


def fee_id(fee: dict[str, Any], index: int) -> str:
    """A fee's id in its procedure version (``fee1``, ``fee2``... for versions stored without ids)."""
    return str(fee.get("id") or f"fee{index + 1}")


def _fee_line(fee: dict[str, Any], index: int, copies: int) -> dict[str, Any]:
    unit = int(fee.get("amount", fee.get("amount_vnd")) or 0)
    count = max(1, copies) if fee.get("basis") == "per_copy" else 1
    return {"id": fee_id(fee, index), "name": str(fee.get("name") or "Lệ phí"),
            "amount": unit * count, "basis": fee.get("basis") or "fixed", "copies": count}


def _due(fee: dict[str, Any]) -> str:
    """When a fee is due; only ``before_reception`` (the default) holds the dossier, so a value
    the catalog does not define counts as due with reception."""
    due = fee.get("due") or "before_reception"
    return due if due in FEE_DUE_MOMENTS else "with_reception"


def fees_due(fees: list[dict[str, Any]], copies: int = 1, exempted: Any = ()
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The procedure's fees split by when they are due: (before reception, with reception).

    A per-copy fee is charged for ``copies`` copies; a fee with a zero amount is nothing due,
    and so is a fee whose id is in ``exempted`` (the applicant declared an exemption).
    """
    before: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    exempted = set(exempted)
    for i, fee in enumerate(fees or []):
        line = _fee_line(fee, i, copies)
        if line["amount"] <= 0 or line["id"] in exempted:
            continue
        (before if _due(fee) == "before_reception" else later).append(line)
    return before, later


def exemption_problems(fees: list[dict[str, Any]], claims: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What is wrong with declared exemptions (``[{fee_id, exemption}]``) against the fees of the
    procedure version filed: an unknown fee, an exemption the fee does not list, a fee declared twice."""
    listed = {fee_id(fee, i): [str(e) for e in fee.get("exemptions") or []] for i, fee in enumerate(fees or [])}
    amounts = {fee_id(fee, i): _fee_line(fee, i, 1)["amount"] for i, fee in enumerate(fees or [])}
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, claim in enumerate(claims or []):
        fid, exemption = str(claim.get("fee_id")), str(claim.get("exemption"))
        if fid not in listed:
            problems.append({"field": f"fee_exemptions.{i}.fee_id", "message": "not a fee of this procedure"})
        elif fid in seen:
            problems.append({"field": f"fee_exemptions.{i}.fee_id", "message": "declared twice"})
        elif exemption not in listed[fid]:
            problems.append({"field": f"fee_exemptions.{i}.exemption",
                             "message": "not an exemption this fee lists"})
        elif amounts[fid] <= 0:
            problems.append({"field": f"fee_exemptions.{i}.fee_id", "message": "nothing is due for this fee"})
        seen.add(fid)
    return problems


def exemptions_declared(state: DossierState, fees: list[dict[str, Any]], claims: list[dict[str, Any]],
                        now: dt.datetime, copies: int = 1) -> list[tuple[str, dict]]:
    """The FeeExemptionDeclared events of a filing (the claims were checked by ``exemption_problems``)."""
    problems = exemption_problems(fees, claims)
    if problems:
        raise InvalidInput("invalid_exemption", "A declared exemption is not one the fee lists.", problems)
    by_id = {fee_id(fee, i): (fee, i) for i, fee in enumerate(fees or [])}
    events = []
    for claim in claims or []:
        fee, i = by_id[str(claim["fee_id"])]
        line = _fee_line(fee, i, copies)
        events.append(("FeeExemptionDeclared", {
            "code": state.code, "agency_code": state.agency_code, "fee_id": line["id"], "fee_name": line["name"],
            "amount": line["amount"],
            "exemption": str(claim["exemption"]), "declared_at": _iso(now), "due": _due(fee)}))
    return events


def dispute_exemption(state: DossierState, args: dict[str, Any], now: dt.datetime,
                      today: dt.date) -> list[tuple[str, dict]]:
    """The agency disputes a declared exemption: the fee is requested after all."""
    fid = str(args.get("fee_id") or "")
    declared = state.exemptions.get(fid)
    if declared is None or declared["status"] != "exempt":
        raise Conflict("no_exemption_to_dispute",
                       "No undisputed exemption was declared for this fee.",
                       {"state": state.status, "command": "dispute_exemption", "fee_id": fid[:100]})
    reason = _text(args, "reason")
    request_id = str(args["request_id"])
    blocking = declared["due"] == "before_reception"
    line = {"id": fid, "name": declared["fee_name"], "amount": declared["amount"], "basis": "fixed", "copies": 1}
    return [("FeeExemptionDisputed", {"code": state.code, "agency_code": state.agency_code, "fee_id": fid,
                                      "reason": reason,
                                      "disputed_at": _iso(now), "request_id": request_id}),
            payment_requested_event(
                state, request_id=request_id, amount=declared["amount"], reason=reason, fees=[line],
                due_date=None, blocking=blocking,
                stopped_on=today if blocking and state.appointment_date else None)]


def _doc_ref(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("id", "requirement", "name", "content_type", "size", "sha256") if k in doc}


def submitted_event(*, code: str, owner: dict, applicant: dict, form: dict, procedure: dict,
                    agency: dict, documents: list[dict], now: dt.datetime,
                    idempotency_key: str | None) -> tuple[str, dict]:
    """The event that opens a dossier's stream (checks on the filing are done before)."""
    return ("DossierSubmitted", {
        "code": code, "owner": owner, "applicant": applicant, "form": form,
        "procedure": procedure, "agency": agency, "documents": documents,
        "submitted_at": _iso(now), "idempotency_key": idempotency_key,
    })


# The place an applicant must name for an agency of this level to check it serves them.
AREA_FIELDS = {"province": ("province",), "district": ("province",), "commune": ("province", "ward")}


def check_filing(procedure: dict[str, Any], agencies: list[dict[str, Any]], agency_code: str,
                 requirements_given: list[str], applicant: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """What is wrong with a filing against the procedure version: a list of field problems.

    ``agencies`` are those implementing the procedure for the applicant's area; a local
    (province or commune) agency also needs that area named, or it could not be checked.
    """
    problems: list[dict[str, str]] = []
    given = set(requirements_given)
    known = {str(d.get("id")) for d in procedure.get("required_documents", [])}
    for doc in procedure.get("required_documents", []):
        if doc.get("mandatory") and str(doc.get("id")) not in given:
            problems.append({"field": f"documents.{doc.get('id')}",
                             "message": f"missing required document: {doc.get('name') or doc.get('id')}"})
    for requirement in sorted(given - known):
        problems.append({"field": f"documents.{requirement}",
                         "message": "not a required document of this procedure"})
    chosen = next((a for a in agencies if a.get("code") == agency_code), None)
    if chosen is None:
        problems.append({"field": "agency_code",
                         "message": "this agency does not implement the procedure for the applicant's area"})
    elif applicant is not None:
        for name in AREA_FIELDS.get(str(chosen.get("level")), ()):
            if applicant.get(name) in (None, ""):
                problems.append({"field": f"applicant.{name}",
                                 "message": f"required: a {chosen.get('level')} agency serves only its own area"})
    return problems
