"""Agency subscriptions and the agency feed: the use cases.

Every event of a dossier routed to an agency goes into that agency's feed (``agency_feed``),
once, as a CloudEvent, in the order of the dossier's versions: an event that arrives ahead of
an earlier one of its dossier (each event type has its own queue) is held until the earlier
one comes, or for at most ``FEED_HOLD`` seconds. From the feed:

- the pull feed (``GET /api/v1/agency/events``) reads it by position, long-polling;
- each subscription is delivered in feed order from its own position: the entries that match
  its channels and filters are POSTed to its callback as structured CloudEvents signed with a
  detached JWS (``delivery_keys``); a failed entry is retried with back-off, and after the
  last allowed attempt it is dead-lettered and the subscription moves on. Operators pause,
  resume and rewind a subscription (redelivery from a position); consumers drop the copies
  they already have by the CloudEvent ``id``.

Transactions begin and end here; network I/O happens outside them (a subscription is leased
for one delivery run, so two workers never send the same subscription's entries at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import eventlet
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from marshmallow import ValidationError

from portal_common.contracts.dossier import national_status_code
from portal_common.contracts.router import FeedQuery, SubscriptionInput
from portal_common.db import Database, StatementBatch
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent
from services.router import feed_repository as feed
from services.router import repository
from services.router.callbacks import CallbackClient, CallbackRefused
from services.router.channels import DeliveryFailed
from services.router.delivery_keys import HEADER, DeliveryKeys, NoDeliveryKey
from services.router.domain import routing
from services.router.domain import subscriptions as rules
from services.router.domain.retry import next_attempt_at
from services.router.domain.routing import RoutingError
from services.router.settings import Settings

log = logging.getLogger(__name__)
SUBSCRIPTION_HEADER = "Portal-Subscription"
LONG_POLL_SLICE_S = 5.0


@dataclasses.dataclass
class FeedBatch:
    """What ``Subscriptions.accept`` shares across the events of one batch: the dossiers'
    attributes (kept up to date as events are accepted), the agencies' successors, the
    dossiers with held events, the writes waiting for the commit and the entries to append."""

    writes: StatementBatch
    attributes: dict[str, dict]
    successors: dict[str, str | None]
    held: set[str]
    entries: list[dict] = dataclasses.field(default_factory=list)


def _stream(sub_id: Any) -> str:
    return f"subscription-{sub_id}"


def cloudevent_bytes(cloudevent: dict) -> bytes:
    """The structured-mode JSON of a stored CloudEvent (the SDK's encoding): the signed body."""
    attributes = {k: v for k, v in cloudevent.items() if k != "data"}
    _, body = to_structured(CloudEvent(attributes, cloudevent.get("data")))
    return body if isinstance(body, bytes) else str(body).encode()


def public_subscription(row: dict) -> dict:
    """A subscription as its agency and operators see it (never the auth header itself)."""
    return {
        "id": str(row["id"]), "agency_code": row["agency_code"], "callback_url": row["callback_url"],
        "channels": list(row["channels"]), "filters": row["filters"] or {},
        "has_auth_header": bool(row.get("has_auth_header")), "state": row["state"],
        "position": row["position"], "attempts": row["attempts"],
        "next_attempt_at": _iso(row.get("next_attempt_at")), "last_error": row.get("last_error"),
        "failing_since": _iso(row.get("failing_since")), "last_success_at": _iso(row.get("last_success_at")),
        "delivered": row.get("delivered", 0), "dead_lettered": row.get("dead_lettered", 0),
        "created_at": _iso(row.get("created_at")), "ended_at": _iso(row.get("ended_at")),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def feed_item(row: dict) -> dict:
    return {"position": row["position"], "event_id": str(row["event_id"]), "event_type": row["event_type"],
            "dossier_code": row["dossier_code"], "status": row["status"],
            "national_status_code": row["national_status_code"], "channels": list(row["channels"]),
            "cloudevent": row["cloudevent"]}


class Subscriptions:
    """Feed, subscriptions and their deliveries, for one worker process."""

    def __init__(self, db: Database, store: EventStore, keys: DeliveryKeys, client: CallbackClient,
                 settings: Settings | None = None, schema_base: str = "http://127.0.0.1:8000",
                 procedure_field: Callable[[str], str | None] | None = None, hold_s: float = 5.0,
                 clock: Callable[[], dt.datetime] | None = None, alert_after_s: float = 900.0,
                 max_per_agency: int = 100, concurrency: int = 1):
        self.db = db
        self.store = store
        self.keys = keys
        self.client = client
        self.settings = settings or Settings()
        self.schema_base = schema_base
        self.procedure_field = procedure_field
        self.hold_s = hold_s
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.alert_after_s = alert_after_s
        self.max_per_agency = max_per_agency
        self.concurrency = concurrency  # subscriptions one delivery run sends to at once

    def _append(self, cur: Any, sub_id: Any, events: list[NewEvent], context: EventContext | None = None) -> None:
        self.store.append(_stream(sub_id), None, events, stream_type="subscription", context=context,
                          cursor=cur.connection.cursor())

    # -- the feed: accepting dossier events ---------------------------------------------------

    def field_hint(self, envelope: dict) -> str | None:
        """The procedure's field (lĩnh vực) for a self-sufficient event: from the event when it
        says, else from the catalog (best effort, before the transaction)."""
        data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
        procedure = data.get("procedure") if isinstance(data.get("procedure"), dict) else {}
        if isinstance(procedure.get("field"), str):
            return procedure["field"]
        if self.procedure_field is None or not isinstance(procedure.get("code"), str):
            return None
        try:
            return self.procedure_field(procedure["code"])
        except Exception as exc:  # the catalog is unavailable: the field stays unknown
            log.info("router: no field for %s: %s", procedure["code"], type(exc).__name__)
            return None

    def accept(self, cur: Any, envelope: dict, field: str | None = None, batch: FeedBatch | None = None) -> list[str]:
        """Put one dossier event into the feed of every agency it is routed to (in ``cur``'s
        transaction), with any held successors it releases; returns the agencies whose feed
        grew. With ``batch`` (``begin_batch``) the reads come from what it read for all the
        events of a batch, and the writes that nothing reads back wait in it for
        ``commit_batch``."""
        try:
            code = routing.dossier_code(envelope.get("data") or {})
        except RoutingError:
            return []
        version = envelope.get("stream_version") if isinstance(envelope.get("stream_version"), int) else None
        row = batch.attributes.get(code) if batch is not None else feed.dossier_attributes(cur, code)
        self_sufficient = envelope.get("event_type") in ("DossierSubmitted", "DossierForwarded")
        fed = row["fed_version"] if row else 0
        # a dossier's first feed entry is its submission (or a hand-over); after that each
        # version follows the one before (held ones are released after hold_s regardless)
        early = (fed == 0 and not self_sufficient) or (fed > 0 and version is not None and version > fed + 1)
        if early:
            feed.hold(cur, str(envelope["event_id"]), code, version or 0, envelope)
            if batch is not None:
                batch.held.add(code)
            return []
        entries: list[dict] = []
        state = dict(row) if row else {"code": code, "fed_version": 0}
        successors = batch.successors if batch is not None else None
        self._entries(cur, envelope, state, field, entries, successors)
        while state["fed_version"] and (batch is None or code in batch.held) and \
                (waiting := feed.take_held(cur, code, state["fed_version"] + 1)) is not None:
            self._entries(cur, waiting, state, None, entries, successors)
        if row is not None or state.get("agency_code"):
            if batch is None:
                feed.save_dossier_attributes(cur, code, state, state["fed_version"])
            else:  # read back from the batch's copy, not from the table
                feed.save_dossier_attributes(batch.writes, code, state, state["fed_version"])
                batch.attributes[code] = feed.saved_attributes(row, state)
        if batch is None:
            feed.append(cur, entries)  # last: it takes the feed lock until the commit
        else:
            batch.entries.extend(entries)
        return sorted({e["agency_code"] for e in entries})

    def begin_batch(self, cur: Any, envelopes: list[dict], reads: repository.BatchReads, writes: StatementBatch,
                    holders: dict[str, str]) -> FeedBatch:
        """What ``accept`` needs for a batch of events, from what the routing of the same events
        read in ``cur``'s transaction (``repository.read_batch``: the dossiers' rows, locked,
        the successors and the held events). The routing's ``writes`` go with the feed's, and
        the commit, in ``commit_batch``; the attributes are as the routing's writes will leave
        the dossiers' ``holders``, as if the routing had committed first."""
        codes = set()
        for envelope in envelopes:
            with contextlib.suppress(RoutingError):
                codes.add(routing.dossier_code(envelope.get("data") or {}))
        attributes = {code: {k: v for k, v in row.items() if k != "stream_version"}
                      for code, row in reads.dossiers.items() if code in codes}
        for code, agency in holders.items():
            if code in codes:
                attributes[code] = {**(attributes.get(code) or feed.saved_attributes(None, {
                    "code": code, "agency_code": agency, "fed_version": 0})), "agency_code": agency}
        return FeedBatch(writes, attributes, reads.successors, reads.held & codes)

    def commit_batch(self, batch: FeedBatch) -> None:
        """The batch's waiting writes, then its entries (taking the feed lock), and the commit,
        in one round trip."""
        feed.append_unread(batch.writes, batch.entries)
        batch.writes.send(commit=True)

    def release_held(self) -> int:
        """Feed the events held longer than ``hold_s`` (their predecessor never came), in order."""
        with self.db.transaction() as cur:
            codes = feed.overdue_held(cur, self.hold_s)
        released = 0
        for code in codes:
            with self.db.transaction() as cur:
                row = feed.dossier_attributes(cur, code)
                state = dict(row) if row else {"code": code, "fed_version": 0}
                entries: list[dict] = []
                for envelope in feed.take_all_held(cur, code):
                    self._entries(cur, envelope, state, None, entries)
                    released += 1
                if row is not None:
                    feed.save_dossier_attributes(cur, code, state, state["fed_version"])
                feed.append(cur, entries)
        return released

    def _entries(self, cur: Any, envelope: dict, state: dict, field: str | None, out: list[dict],
                 successors: dict[str, str | None] | None = None) -> None:
        """Advance ``state`` (the dossier's attributes) by one event and add its feed entries."""
        data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
        event_type = str(envelope.get("event_type"))
        procedure = data.get("procedure") if isinstance(data.get("procedure"), dict) else {}
        applicant = data.get("applicant") if isinstance(data.get("applicant"), dict) else {}
        if isinstance(procedure.get("code"), str):
            state["procedure_code"] = procedure["code"]
        if field or isinstance(procedure.get("field"), str):
            state["field"] = field or procedure["field"]
        if isinstance(applicant.get("province"), str | int) and str(applicant.get("province")):
            state["province_code"] = str(applicant["province"])
        version = envelope.get("stream_version")
        if isinstance(version, int) and version < state.get("fed_version", 0):
            status = state.get("status")  # a late event (released after its hold) keeps today's status
        else:
            state["status"] = status = rules.status_after(event_type, state.get("status"), envelope)
            if isinstance(version, int):
                state["fed_version"] = version
        try:
            # the row read for update holds it (and it changes only below, in this transaction)
            holder = state.get("agency_code") or repository.dossier_holder(cur, state["code"])
            targets = routing.recipients(event_type, data, holder,
                                         repository.successors(cur) if successors is None else successors)
        except RoutingError as exc:
            log.warning("router: event %s of %s goes to no agency feed: %s", envelope.get("event_id"),
                        state["code"], exc)
            return
        if holder is None:
            repository.set_dossier_holder(cur, state["code"], targets[0][0], version if isinstance(version, int)
                                          else 0)
        state["agency_code"] = holder or targets[0][0]
        attrs = {"dossier_code": state["code"], "procedure_code": state.get("procedure_code"),
                 "field": state.get("field"), "province_code": state.get("province_code"), "status": status}
        for agency, _ in targets:
            cloudevent = rules.cloudevent_attributes(envelope, agency, attrs, self.schema_base)
            cloudevent["data"] = data
            out.append({**attrs, "agency_code": agency, "event_id": str(envelope["event_id"]),
                        "event_type": event_type, "channels": rules.channels_of(event_type),
                        "stream_version": version if isinstance(version, int) else None,
                        "national_status_code": national_status_code(status), "cloudevent": cloudevent})

    # -- the pull feed ---------------------------------------------------------------------------

    def read(self, agency_code: str, after: Any = 0, limit: Any = 100, wait: Any = 0) -> dict:
        """The agency's feed entries after ``after``, waiting up to ``wait`` seconds (at most one
        long-poll slice per call) for the first one."""
        try:
            q = FeedQuery().load({"after": after, "limit": limit, "wait": wait})
        except ValidationError as exc:
            raise InvalidInput("invalid_input", "the feed query is not valid", exc.messages) from None
        deadline = time.monotonic() + min(float(q["wait"]), LONG_POLL_SLICE_S)
        while True:
            with self.db.transaction() as cur:
                rows = feed.read_feed(cur, agency_code, q["after"], q["limit"])
            if rows or time.monotonic() >= deadline:
                break
            eventlet.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        items = [feed_item(r) for r in rows]
        return {"items": items, "last_position": items[-1]["position"] if items else q["after"]}

    # -- subscriptions: the agency's own ------------------------------------------------------------

    def create(self, context: EventContext, agency_code: str, body: Any) -> dict:
        """Check the body, the callback's address and its handshake, then subscribe from the
        feed's head now (a subscription gets what happens from now on)."""
        try:
            data = SubscriptionInput().load(body if isinstance(body, dict) else {})
            channels = rules.normalize_channels(data["channels"])
            filters = rules.normalize_filters(data.get("filters"))
        except ValidationError as exc:
            raise InvalidInput("invalid_input", "the subscription is not valid", exc.messages) from None
        except rules.FilterError as exc:
            raise InvalidInput("invalid_filters", "the subscription's channels or filters are not valid",
                               exc.errors) from None
        try:
            self.client.verify(data["callback_url"], data.get("auth_header"))
        except CallbackRefused as exc:
            raise InvalidInput("callback_refused", f"the callback URL cannot be used: {exc}",
                               {"callback_url": [str(exc)]}) from None
        sub_id = str(uuid.uuid4())
        with self.db.transaction() as cur:
            if len(feed.list_subscriptions(cur, agency_code)) >= self.max_per_agency:
                raise Conflict("too_many_subscriptions",
                               f"an agency may hold at most {self.max_per_agency} subscriptions; end one first")
            row = feed.insert_subscription(cur, {
                "id": sub_id, "agency_code": agency_code, "callback_url": data["callback_url"],
                "channels": channels, "filters": filters, "auth_header": data.get("auth_header"),
                "position": feed.head(cur, agency_code)})
            self._append(cur, sub_id, [NewEvent("SubscriptionCreated", {
                "subscription_id": sub_id, "agency_code": agency_code, "callback_url": data["callback_url"],
                "channels": channels, "filters": filters})], context)
        return public_subscription(row)

    def list(self, agency_code: str | None) -> list[dict]:
        with self.db.transaction() as cur:
            return [public_subscription(r) for r in feed.list_subscriptions(cur, agency_code)]

    def get(self, agency_code: str | None, sub_id: Any) -> dict:
        with self.db.transaction() as cur:
            return public_subscription(self._own(cur, agency_code, sub_id))

    def _own(self, cur: Any, agency_code: str | None, sub_id: Any, for_update: bool = False) -> dict:
        """The subscription, if it is the agency's (None: an operator's view of any)."""
        try:
            key = str(uuid.UUID(str(sub_id)))
        except ValueError:
            raise NotFound("subscription_not_found", "no such subscription") from None
        row = feed.get_subscription(cur, key, agency_code, for_update)
        if row is None or row["state"] == "ended":
            raise NotFound("subscription_not_found", "no such subscription")
        return row

    def end(self, context: EventContext, agency_code: str | None, sub_id: Any) -> dict:
        with self.db.transaction() as cur:
            row = self._own(cur, agency_code, sub_id, for_update=True)
            feed.set_state(cur, str(row["id"]), "ended")
            self._append(cur, row["id"], [NewEvent("SubscriptionEnded", {
                "subscription_id": str(row["id"]), "agency_code": row["agency_code"]})], context)
            return public_subscription(feed.get_subscription(cur, str(row["id"])))

    # -- operators ------------------------------------------------------------------------------------

    def set_paused(self, context: EventContext, sub_id: Any, paused: bool) -> dict:
        target = "paused" if paused else "active"
        with self.db.transaction() as cur:
            row = self._own(cur, None, sub_id, for_update=True)
            if row["state"] != target:
                feed.set_state(cur, str(row["id"]), target)
                self._append(cur, row["id"], [NewEvent("SubscriptionPaused" if paused else "SubscriptionResumed", {
                    "subscription_id": str(row["id"]), "agency_code": row["agency_code"]})], context)
            return public_subscription(feed.get_subscription(cur, str(row["id"])))

    def rewind(self, context: EventContext, sub_id: Any, from_position: Any) -> dict:
        """Deliver again every matching entry from ``from_position`` on (inclusive)."""
        if not isinstance(from_position, int) or isinstance(from_position, bool) or from_position < 1:
            raise InvalidInput("invalid_input", "from_position is a feed position (1 or more)")
        with self.db.transaction() as cur:
            row = self._own(cur, None, sub_id, for_update=True)
            if from_position - 1 > feed.head(cur, row["agency_code"]):
                raise Conflict("position_ahead", "the position is beyond the agency's feed")
            feed.rewind(cur, str(row["id"]), from_position - 1)
            self._append(cur, row["id"], [NewEvent("SubscriptionRewound", {
                "subscription_id": str(row["id"]), "agency_code": row["agency_code"],
                "from_position": from_position, "previous_position": row["position"]})], context)
            return public_subscription(feed.get_subscription(cur, str(row["id"])))

    def dead_letters(self, sub_id: Any, limit: int = 100) -> list[dict]:
        with self.db.transaction() as cur:
            row = self._own(cur, None, sub_id)
            return [{"subscription_id": str(r["subscription_id"]), "position": r["position"],
                     "event_id": str(r["event_id"]), "attempts": r["attempts"], "error": r["error"],
                     "created_at": _iso(r["created_at"])} for r in feed.dead_letters(cur, str(row["id"]), limit)]

    def status(self, alert_after_s: float | None = None) -> list[dict]:
        """Every live subscription with its state, position, lag and failure streak; ``failing``
        when the streak is longer than ``alert_after_s`` (``SUBSCRIPTION_ALERT_AFTER``)."""
        alert = self.alert_after_s if alert_after_s is None else alert_after_s
        with self.db.transaction() as cur:
            rows = feed.stats(cur, self.clock())
        return [{"id": str(r["id"]), "agency_code": r["agency_code"], "state": r["state"],
                 "position": r["position"], "lag_entries": r["lag_entries"],
                 "lag_seconds": round(float(r["lag_seconds"] or 0), 1), "attempts": r["attempts"],
                 "failing_for_seconds": round(float(r["failing_for_seconds"] or 0), 1),
                 "failing": rules.failing(r["failing_for_seconds"], alert),
                 "delivered": r["delivered"], "dead_lettered": r["dead_lettered"], "last_error": r["last_error"],
                 "last_success_at": _iso(r["last_success_at"])} for r in rows]

    # -- delivering ------------------------------------------------------------------------------------

    def pump(self, agency_code: str | None = None, limit: int = 50) -> int:
        """One delivery run of every due subscription (of one agency when named); returns the
        number of entries delivered. Finding none due (the common case: an agency's feed grew
        but its subscribers are up to date or it has none) is one round trip."""
        with self.db.autocommit() as cur:  # a read alone: no transaction to open and commit
            due = feed.due_subscriptions(cur, agency_code, limit, self.clock())
        if not due:
            return 0
        with self.db.transaction() as cur:  # each move checks the position it read: see skip_to
            ids = self._with_matches(cur, due)
        if self.concurrency > 1 and len(ids) > 1:  # subscriptions are independent: send side by side
            return sum(eventlet.GreenPool(min(self.concurrency, len(ids))).imap(self._deliver_safely, ids))
        return sum(self._deliver_safely(sub_id) for sub_id in ids)

    def _deliver_safely(self, sub_id: str) -> int:
        try:
            return self.deliver(sub_id)
        except Exception:  # one broken subscription must not stop the others
            log.exception("router: delivery run of subscription %s failed unexpectedly", sub_id)
            return 0

    def _with_matches(self, cur: Any, due: list[dict], batch: int = 100) -> list[str]:
        """The due subscriptions that have a matching entry to send; the others are moved past
        the entries they were shown at once, in one statement (most of an agency's
        subscriptions match few of its events)."""
        by_agency: dict[str, list[dict]] = {}
        for sub in due:
            by_agency.setdefault(sub["agency_code"], []).append(sub)
        busy: list[str] = []
        moves: list[tuple[str, int, int]] = []
        for agency, subs in by_agency.items():
            rows = feed.read_feed(cur, agency, min(s["position"] for s in subs), batch)
            for sub in subs:
                waiting = [r for r in rows if r["position"] > sub["position"]]
                if not waiting or any(rules.matches(sub["channels"], sub["filters"] or {}, r) for r in waiting):
                    busy.append(str(sub["id"]))  # (its entries lie beyond this read: it reads its own)
                else:
                    moves.append((str(sub["id"]), sub["position"], waiting[-1]["position"]))
        feed.skip_to(cur, moves)
        return busy

    def deliver(self, sub_id: str, batch: int = 100) -> int:
        """Send the subscription's matching entries in feed order until one fails or none is left
        (in batches); returns how many were delivered."""
        with self.db.transaction() as cur:
            sub = feed.lease_subscription(cur, sub_id, self.settings.lease_s, self.clock())
            rows = feed.read_feed(cur, sub["agency_code"], sub["position"], batch) if sub else []
        if sub is None:
            return 0
        position, sent = sub["position"], 0
        for row in rows:
            if rules.matches(sub["channels"], sub["filters"] or {}, row):
                try:
                    self.send(sub, row)
                except DeliveryFailed as exc:
                    return sent + self._failed(sub, row, position, sent, str(exc))
                sent += 1
            position = row["position"]
        with self.db.transaction() as cur:
            feed.advance(cur, sub_id, position, sent)
        return sent

    def send(self, sub: dict, row: dict) -> None:
        body = cloudevent_bytes(row["cloudevent"])
        try:
            signature = self.keys.sign(body)
        except NoDeliveryKey as exc:
            raise DeliveryFailed(str(exc)) from None
        headers = {"Content-Type": "application/cloudevents+json; charset=utf-8", HEADER: signature,
                   SUBSCRIPTION_HEADER: str(sub["id"])}
        if sub.get("auth_header"):
            headers["Authorization"] = sub["auth_header"]
        self.client.send(sub["callback_url"], headers, body)

    def _failed(self, sub: dict, row: dict, position: int, sent: int, error: str) -> int:
        attempt = sub["attempts"] + 1
        policy = self.settings.policy
        with self.db.transaction() as cur:
            if sent or position > sub["position"]:
                feed.advance(cur, str(sub["id"]), position, sent)
            if policy.exhausted(attempt):
                feed.dead_letter(cur, str(sub["id"]), row, attempt, error)
                feed.record_failure(cur, str(sub["id"]), 0, error, self.clock(), self.clock())
                log.warning("router: subscription %s dead-lettered position %s after %d attempts: %s",
                            sub["id"], row["position"], attempt, error)
            else:
                now = self.clock()
                feed.record_failure(cur, str(sub["id"]), attempt, error, next_attempt_at(now, attempt, policy), now)
        return 0
