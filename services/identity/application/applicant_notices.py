"""SMS to applicants when their dossier needs them or has news, and their opt-out.

The texts, which events notify and who is skipped are in ``domain/notifications.py``; the
SQL in ``repository.py``. How a dossier event becomes at most one SMS:

1. ``handle`` (identity's durable queue for each dossier event type): in one transaction
   (``handle_once``) the event is marked handled, the owner is learned from DossierSubmitted /
   DossierForwarded or looked up, and a pending notice is written when the owner is a citizen
   with a phone who did not opt out. A redelivered copy finds the event handled and writes
   nothing, so there is one notice per event. (DossierDraftSubmitted is not needed: it names
   no owner, and filing a draft also publishes the dossier's own DossierSubmitted.)
2. Right after that commit the notice (leased in the same transaction) is sent and closed with
   ``ApplicantNotified`` on the account's stream. No SMS is sent while a transaction holds a
   connection (the local stand-in takes one of its own from the same pool), and a failed send is
   retried by ``deliver_due`` (a timer) with back-off, up to ``MAX_ATTEMPTS``. A crash between
   the send and the close sends once more, with the same client reference (the event id): a
   gateway that honours references (the local stand-in does) delivers it once.

Events in flight are handled in batches (``take``, through ``portal_common.coalesce``): the
events this process is handling at the same time share one transaction that marks them handled
and writes their notices (one multi-row statement each, the notices leased and the ``COMMIT``
in one round trip), then the SMS are sent one by one, and one round trip closes the sent
notices, appends the ``ApplicantNotified`` of each one it closed and commits
(``close_sent_notices``, migrations/010; the log's lock is held for that round trip only).
A lone event is a batch of one, which takes under half the round trips of the one-at-a-time
way (``handle``); a batch that fails before its
first commit is taken as not done, and each event is then handled alone by ``handle``, so
only the bad one fails (retried, then parked). An event whose owner
the batch does not know, and a second event of a dossier already in the batch, are left to be
handled alone after it (their mark undone): the owner wait and the order of a dossier's events
stay as when events come one at a time.

Owner not known yet: the queues are separate, so e.g. DossierReceived can be handled before
DossierSubmitted (after identity was down with both queues full). The event is put back on its
queue (``OwnerNotKnown`` raised: the message is tried again later, with back-off) and given up,
counted and logged, once it has waited ``OWNER_WAIT``. Chosen over an RPC to the dossier
service: identity keeps needing nothing from dossier to run, and the owner is always on its
way (DossierSubmitted comes first in a dossier's log and the outbox publishes in log order), so
the wait is short; only dossiers filed before this table existed are given up.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from portal_common.coalesce import ALONE, Coalescer
from portal_common.consumer import event_id_of, handle_once, release_many
from portal_common.contracts.identity import NotificationPreferencesBody
from portal_common.db import Database, StatementBatch
from portal_common.eventstore import EventContext, EventStore, NewEvent
from services.identity import repository as repo
from services.identity import settings
from services.identity.adapters import SmsGateway
from services.identity.application.shared import load, record
from services.identity.domain import accounts
from services.identity.domain import notifications as notices
from services.identity.domain.ids import mask_phone

log = logging.getLogger(__name__)
CONSUMER = "identity.applicant-notices"
CHANNEL = "sms"
OWNER_WAIT_S = settings.NOTICE_OWNER_WAIT_S
MAX_ATTEMPTS = settings.NOTICE_MAX_ATTEMPTS
ENABLED = settings.APPLICANT_SMS
SEND_LEASE_S = 60.0  # a notice being sent is not taken by another sender for this long
BATCH = 50
EVENT_BATCH = settings.NOTICE_BATCH  # dossier events handled together at most (1: one at a time)
EVENT_BATCHES = settings.NOTICE_BATCHES  # batches handled at the same time
EVENT_LINGER_S = settings.NOTICE_LINGER_S  # a lone event's wait for others to join it

NOTIFICATIONS = Counter(
    "portal_notifications_total",
    "Applicant notifications by outcome: sent; skipped (reason: opted_out, not_citizen, no_phone, no_account, "
    "duplicate, owner_unknown, unreadable_event); deferred (put back to wait: owner_unknown, sms_unavailable); "
    "failed (sms_unavailable after every attempt)",
    ["channel", "event_type", "outcome", "reason"])


class OwnerNotKnown(Exception):
    """The dossier's DossierSubmitted has not been handled yet: the event must come again."""


@dataclass(frozen=True)
class Decision:
    """What handling one event decided: ``notice`` (an SMS to send), ``skipped`` or ``ignored``."""

    outcome: str
    reason: str = ""
    notice: dict | None = None  # the notice written, already leased for sending


def _count(event_type: Any, outcome: str, reason: str = "") -> None:
    NOTIFICATIONS.labels(CHANNEL, str(event_type), outcome, reason).inc()


# -- dossier events -> notices -------------------------------------------------------------

def handle(db: Database, store: EventStore, sms: SmsGateway, envelope: Any) -> str:
    """Handle one dossier event once; raises ``OwnerNotKnown`` to have it delivered again."""
    try:
        event_id = event_id_of(envelope)
    except ValueError as exc:
        log.warning("notifications: dropping a dossier message (%s)", exc)
        return "dropped"
    event_type = envelope.get("event_type")
    if not ENABLED:
        return "disabled"
    try:
        applied, decision = handle_once(db, CONSUMER, envelope, _decide)
    except OwnerNotKnown:
        return _wait_or_give_up(db, envelope, event_id)
    if not applied:
        if event_type in notices.NOTIFYING:
            _count(event_type, "skipped", "duplicate")
        return "duplicate"
    if decision.outcome == "skipped":
        _count(event_type, "skipped", decision.reason)
    elif decision.outcome == "notice" and decision.notice is not None:
        _send(db, store, sms, decision.notice)
    return decision.outcome


_coalescers: dict[tuple[int, int, int], tuple[Any, Coalescer]] = {}
_coalescers_lock = threading.Lock()


def take(db: Database, store: EventStore, sms: SmsGateway, envelope: Any) -> Any:
    """A dossier event from its entrypoint: handled with the others this process has in flight
    (``handle_many``, a batch of one when it is alone: half the round trips of ``handle``), and
    by ``handle`` when the batch leaves it alone (owner not known, malformed id) or failed.
    Returns once its effects are committed (the message's ack follows them); a failure of its
    own, and ``OwnerNotKnown``, escape so that the entrypoint tries the message again."""
    if not ENABLED or EVENT_BATCH <= 1:
        return handle(db, store, sms, envelope)
    key = (id(db), id(store), id(sms))
    found = _coalescers.get(key)
    if found is None:
        with _coalescers_lock:
            found = _coalescers.get(key)
            if found is None:  # one per process in the service (its pool, log and gateway are the process's)
                coalescer = Coalescer(lambda items: handle_many(db, store, sms, items),
                                      lambda item: handle(db, store, sms, item),
                                      max_batch=EVENT_BATCH, parallel=EVENT_BATCHES,
                                      name="identity: batch of dossier events", single_batches=True,
                                      linger_s=EVENT_LINGER_S)
                found = _coalescers[key] = ((db, store, sms), coalescer)
    return found[1].submit(envelope)


def handle_many(db: Database, store: EventStore, sms: SmsGateway, envelopes: list[Any]) -> list[Any]:
    """Do for a batch of dossier events what ``handle`` does for each: one transaction marks
    them handled, learns the owners and writes the notices (leased), the SMS are sent, and one
    transaction closes them and appends every ``ApplicantNotified`` with its commit.

    Returns per envelope what ``handle`` would (``ALONE``: for the caller to handle it on its
    own afterwards): a malformed event id, a second event of a dossier already in the batch,
    an event whose owner is not known here. Raises when the batch failed before its commit (the
    caller then handles each envelope alone; nothing of the batch is kept). Once the notices
    are committed nothing is raised: a send or record that fails is the timer's to finish,
    as for one event."""
    if not ENABLED:
        return ["disabled"] * len(envelopes)
    out: list[Any] = [ALONE] * len(envelopes)
    batch: list[tuple[int, str, dict]] = []
    dossiers: set[str] = set()
    for i, envelope in enumerate(envelopes):
        try:
            event_id = event_id_of(envelope)
        except ValueError:
            continue  # alone: dropped there, as always
        data = envelope.get("data")
        code = data.get("code") if isinstance(data, dict) else None
        if isinstance(code, str):
            if code in dossiers:
                continue  # alone, after this batch: the dossier's events keep their order
            dossiers.add(code)
        batch.append((i, event_id, envelope))
    if not batch:
        return out
    notices_out = _decide_many(db, batch, out)
    try:
        _send_many(db, store, sms, notices_out)
    except Exception:  # the notices are committed and leased: the timer sends what is left
        log.exception("notifications: sending a batch of %d notices failed unexpectedly", len(notices_out))
    return out


def _decide_many(db: Database, batch: list[tuple[int, str, dict]], out: list[Any]) -> list[dict]:
    """``_decide`` for a batch, in one transaction; fills ``out`` and returns the notices
    written (leased for sending)."""
    notices_out: list[dict] = []
    owners, wanted = [], []
    for _, _, envelope in batch:  # a copy handled before teaches nothing new: the owner is fixed at filing
        event_type, data = envelope.get("event_type"), envelope.get("data") or {}
        code = data.get("code") if isinstance(data, dict) else None
        owner = notices.owner_of(event_type, data)
        if owner and isinstance(code, str):
            owners.append((code, *owner))
        if event_type in notices.NOTIFYING and isinstance(code, str):
            wanted.append(code)
    with db.transaction() as cur:
        writes = StatementBatch(cur)
        repo.remember_dossier_owners(writes, sorted(owners))
        # the events claimed in one order (rows of two batches that overlap are locked alike:
        # no deadlock), in the round trip that remembers the owners and reads the targets
        new, targets = repo.claim_with_targets(writes, CONSUMER, sorted({event_id for _, event_id, _ in batch}),
                                               sorted(set(wanted)))
        fresh = []
        for i, event_id, envelope in batch:
            if event_id in new:
                new.discard(event_id)  # a second copy in the same batch is a duplicate
                fresh.append((i, event_id, envelope))
                continue
            out[i] = "duplicate"
            if envelope.get("event_type") in notices.NOTIFYING:
                _count(envelope.get("event_type"), "skipped", "duplicate")
        decided, alone, skipped = [], [], []
        for i, event_id, envelope in fresh:
            event_type, data = envelope.get("event_type"), envelope.get("data") or {}
            if event_type not in notices.NOTIFYING:
                decided.append(event_id)
                out[i] = "ignored"
                continue
            text = notices.sms_text(event_type, data)
            if text is None:
                decided.append(event_id)
                skipped.append((event_type, "unreadable_event"))
                out[i] = "skipped"
                continue
            code = data["code"]
            target = targets.get(code)
            if target is None or (target["id"] is None and accounts.is_uuid(target["account_id"])):
                # owner not known yet (or an id in another spelling): the one-at-a-time way decides
                alone.append(event_id)
                continue
            account = target if target["id"] is not None else None
            reason = notices.skip_reason(account)
            decided.append(event_id)
            if reason:
                skipped.append((event_type, reason))
                out[i] = "skipped"
                continue
            notices_out.append({"event_id": event_id, "account_id": str(account["id"]), "dossier_code": code,
                                "event_type": event_type, "body": text, "attempts": 1, "role": account["role"],
                                "phone": account["phone"], "notify_sms": account["notify_sms"]})
            out[i] = "notice"
        repo.forget_waits(writes, decided)
        release_many(writes, CONSUMER, alone)
        repo.insert_leased_notices(writes, notices_out, SEND_LEASE_S)
        writes.send(commit=True)
    for event_type, reason in skipped:
        _count(event_type, "skipped", reason)
    return notices_out


def _send_many(db: Database, store: EventStore, sms: SmsGateway, leased: list[dict]) -> None:
    """Send each notice, then close the sent ones and append their ``ApplicantNotified`` in one
    transaction (a refused send goes the way of ``_after_failure``, its own)."""
    sent = []
    for notice in leased:
        try:
            sms.send(notice["phone"], notice["body"], reference=str(notice["event_id"]))
        except Exception as exc:  # the gateway refused or is away: retried with back-off
            _after_failure(db, notice, exc)
            continue
        sent.append(notice)
    if not sent:
        return
    notified = [(f"account-{n['account_id']}",
                 store.encode([_notified(n)], EventContext(causation_id=str(n["event_id"])))) for n in sent]
    with db.transaction() as cur:
        writes = StatementBatch(cur)
        repo.finish_sent_notices(writes, [n["event_id"] for n in sent], notified)
        writes.send(commit=True)  # the notices closed, their events appended and the COMMIT: one round trip
    for notice in sent:
        _count(notice["event_type"], "sent")
        log.info("applicant notified",
                 extra={"to": mask_phone(notice["phone"]), "dossier_code": notice["dossier_code"]})


def _notified(notice: dict) -> NewEvent:
    return NewEvent("ApplicantNotified", {
        "account_id": str(notice["account_id"]), "dossier_code": notice["dossier_code"],
        "dossier_event_type": notice["event_type"], "channel": CHANNEL, "sent_to": mask_phone(notice["phone"])})


def _decide(cur, envelope: dict) -> Decision:
    """In the handling transaction: learn the owner, and write the notice the event calls for."""
    event_type, data = envelope.get("event_type"), envelope.get("data") or {}
    event_id = event_id_of(envelope)
    repo.forget_wait(cur, event_id)
    code = data.get("code") if isinstance(data, dict) else None
    owner = notices.owner_of(event_type, data)
    if owner and isinstance(code, str):
        repo.remember_dossier_owner(cur, code, *owner)
    if event_type not in notices.NOTIFYING:
        return Decision("ignored")
    text = notices.sms_text(event_type, data)
    if text is None:
        return Decision("skipped", "unreadable_event")
    account_id = repo.dossier_owner(cur, code)
    if account_id is None:
        raise OwnerNotKnown(code)
    account = repo.notification_target(cur, account_id) if accounts.is_uuid(account_id) else None
    reason = notices.skip_reason(account)
    if reason:
        return Decision("skipped", reason)
    repo.insert_notice(cur, event_id, account["id"], code, event_type, text)
    # leased in the same transaction: the send right after the commit needs no second one, and
    # should it never happen the timer takes the notice once the lease is over
    leased = repo.lease_notices(cur, SEND_LEASE_S, 1, event_id)
    return Decision("notice", notice=leased[0] if leased else None)


def _wait_or_give_up(db: Database, envelope: dict, event_id: str) -> str:
    """Have the event tried again later until it has waited ``OWNER_WAIT_S``, then drop it."""
    event_type, data = envelope.get("event_type"), envelope.get("data") or {}
    code = data.get("code") if isinstance(data, dict) else None
    with db.transaction() as cur:
        waited = repo.note_wait(cur, event_id, str(code) if code else None, "owner_unknown")
    if waited >= OWNER_WAIT_S:
        applied, _ = handle_once(db, CONSUMER, envelope, lambda cur, env: repo.forget_wait(cur, event_id))
        if applied:
            log.warning("notifications: no owner known for dossier %s after %.0f s; %s not notified",
                        code, waited, event_type, extra={"dossier_code": code})
            _count(event_type, "skipped", "owner_unknown")
        return "gave_up"
    _count(event_type, "deferred", "owner_unknown")
    raise OwnerNotKnown(code)


# -- notices -> SMS ------------------------------------------------------------------------

def deliver_due(db: Database, store: EventStore, sms: SmsGateway) -> int:
    """The timer's round: notices whose send failed (or never happened), once their back-off or
    lease is over; how many were sent."""
    with db.transaction() as cur:
        leased = repo.lease_notices(cur, SEND_LEASE_S, BATCH)
    return sum(_send(db, store, sms, notice) for notice in leased)


def _send(db: Database, store: EventStore, sms: SmsGateway, notice: dict) -> bool:
    reason = notices.skip_reason(notice)  # opted out or number removed since the notice was written
    if reason:
        with db.transaction() as cur:
            repo.finish_notice(cur, notice["event_id"], "skipped")
        _count(notice["event_type"], "skipped", reason)
        return False
    try:
        sms.send(notice["phone"], notice["body"], reference=str(notice["event_id"]))
    except Exception as exc:  # the gateway refused or is away: retried with back-off
        _after_failure(db, notice, exc)
        return False
    with db.transaction() as cur:
        if repo.finish_notice(cur, notice["event_id"], "sent"):
            record(store, cur, f"account-{notice['account_id']}", [_notified(notice)],
                   EventContext(causation_id=str(notice["event_id"])),
                   commit=True)  # the append is the transaction's last statement: it commits it
    _count(notice["event_type"], "sent")
    log.info("applicant notified", extra={"to": mask_phone(notice["phone"]), "dossier_code": notice["dossier_code"]})
    return True


def _after_failure(db: Database, notice: dict, exc: Exception) -> None:
    final = notice["attempts"] >= MAX_ATTEMPTS
    with db.transaction() as cur:
        if final:
            repo.finish_notice(cur, notice["event_id"], "failed")
        else:
            repo.retry_notice_at(cur, notice["event_id"], notices.retry_delay(notice["attempts"]))
    log.warning("notifications: SMS about %s not sent (attempt %s%s): %s", notice["dossier_code"],
                notice["attempts"], ", giving up" if final else "", type(exc).__name__,
                extra={"dossier_code": notice["dossier_code"]})
    _count(notice["event_type"], "failed" if final else "deferred", "sms_unavailable")


# -- the applicant's preference ------------------------------------------------------------

def preferences(db: Database, account_id: str) -> dict:
    """``GET /api/v1/me/notifications``: the choice and where SMS go (masked; null when none would)."""
    accounts.require_account_id(account_id)
    with db.transaction() as cur:
        account = accounts.require_found(repo.notification_target(cur, account_id))
    return notices.preference_view(account)


def set_preferences(db: Database, store: EventStore, account_id: str, raw: dict, ctx: EventContext) -> dict:
    """``PUT /api/v1/me/notifications``: turn SMS about dossiers on or off.

    A real change is recorded (``NotificationPreferencesChanged``) with it, in one transaction;
    setting the value already held writes nothing.
    """
    data = load(NotificationPreferencesBody, raw)
    accounts.require_account_id(account_id)
    wanted = data["notify_sms"]
    with db.transaction() as cur:
        account = accounts.require_found(repo.notification_target(cur, account_id, for_update=True))
        if bool(account["notify_sms"]) != wanted:
            account = repo.set_notify_sms(cur, account_id, wanted)
            owner = str(account["id"])
            record(store, cur, f"account-{owner}", [NewEvent("NotificationPreferencesChanged", {
                "account_id": owner, "notify_sms": wanted})], ctx)
    return notices.preference_view(account)
