"""The router's use cases: route a dossier event, attempt a delivery, record the outcome,
redeliver dead letters, acknowledge, change the routing table, mirror the catalog's agencies,
and the queries of operators and agencies.

``service.py`` (entrypoints) calls ``Router`` here, which validates the input with
``schemas.py``, begins and ends every transaction, and asks ``domain/`` (pure rules),
``repository.py`` (writes) and ``queries.py`` (read models); ``channels.py``, ``secrets.py``
and ``catalog_client.py`` are the adapters it sends and asks through.

Every state change commits together with its events (appended last, on the same
connection). Network I/O happens outside transactions: a delivery is leased, sent, then its
outcome recorded, so a crash mid-way leaves a lease that runs out and the delivery is tried
again; agency systems drop the second copy by its ``delivery_id``. An event handler lets a
failure before its commit escape, so the shared entrypoint retries the message. A dossier
event (or a batch of them) is routed and fed in one transaction: its deliveries, the dossier's
holder, the ``DeliveryScheduled`` appends and the agencies' feed entries commit together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError

from portal_common.coalesce import ALONE, Coalescer
from portal_common.consumer import event_id_of, handle_once
from portal_common.context import event_context
from portal_common.contracts.fields import EnvelopeSchema
from portal_common.db import CommittingCursor, Database, StatementBatch
from portal_common.errors import Conflict, InvalidInput, NotFound
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent
from services.router import queries, repository, schemas
from services.router.agency_sync import AgencySync
from services.router.callbacks import CallbackClient, CallbackPolicy
from services.router.channels import AmqpChannel, DeliveryFailed, HttpChannel, Outgoing
from services.router.delivery_keys import HEADER, DeliveryKeys, NoDeliveryKey
from services.router.domain import routing
from services.router.domain.retry import next_attempt_at
from services.router.domain.routing import Route, RoutingError
from services.router.domain.signing import encode_body
from services.router.domain.subscriptions import delivery_attributes
from services.router.secrets import SecretStore, previous_ref
from services.router.settings import Settings
from services.router.subscriptions import Subscriptions

log = logging.getLogger(__name__)
_ENVELOPE = EnvelopeSchema()
ROUTING, FEED = "router.dossier", "router.feed"  # the consumers whose dedupe records a dossier event takes


def _stream(delivery_id: Any) -> str:
    return f"delivery-{delivery_id}"


@dataclasses.dataclass
class RoutePlan:
    """What routing a batch left for after its commit: the deliveries it planned (rows as they
    are inserted, leased; ``created`` keeps those the insert did not find already there), the
    routes of their agencies, the dossiers' holders as its writes leave them (code: (agency,
    version)), and the agencies' successors it read."""

    rows: list[dict] = dataclasses.field(default_factory=list)
    routes: dict[str, Route] = dataclasses.field(default_factory=dict)
    holders: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)
    successors: dict[str, str | None] | None = None

    def created(self, writes: StatementBatch) -> list[dict]:
        """The planned rows inserted by ``writes``' round trip, now sent."""
        if not self.rows:
            return []
        inserted = repository.scheduled_ids(writes.after_row)
        return [row for row in self.rows if row["delivery_id"] in inserted]


def _named(envelopes: list[dict]) -> tuple[list[str], list[str]]:
    """The dossiers and the agencies (as addressed, before any successor) that events name."""
    codes: set[str] = set()
    agencies: set[str] = set()
    for envelope in envelopes:
        data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
        with contextlib.suppress(RoutingError):
            codes.add(routing.dossier_code(data))
        with contextlib.suppress(RoutingError):
            agencies.add(routing.addressed_agency(str(envelope.get("event_type")), data, None))
    return sorted(codes), sorted(agencies)


def _fresh(new: set[str], items: list[tuple[dict, Any]]) -> list[tuple[dict, Any]]:
    """The items ``(envelope, hint)`` whose event is in ``new`` (claimed just now by their
    consumer: not handled before); a second copy in the list is a duplicate."""
    new = set(new)
    fresh = []
    for envelope, hint in items:
        event_id = event_id_of(envelope)
        if event_id in new:
            new.discard(event_id)
            fresh.append((envelope, hint))
    return fresh


def _unroutable(envelope: Any, exc: Exception) -> None:
    """A message that cannot be routed is logged and dropped (redelivering it would never succeed)."""
    log.warning("router: dropping unroutable event %s: %s",
                envelope.get("event_id") if isinstance(envelope, dict) else None, exc)


def _load(schema: Schema, data: Any) -> dict:
    """RPC input checked against its boundary schema, or ``InvalidInput`` with the field errors."""
    try:
        return schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise InvalidInput("invalid_input", "the request does not match its schema", exc.messages) from None


class Router:
    """One worker's view of the router: database, log, both channels, settings."""

    def __init__(self, db: Database, store: EventStore, amqp: AmqpChannel, http: HttpChannel,
                 settings: Settings | None = None,
                 secrets: SecretStore | None = None,
                 resolve_remote: Callable[[str], str] | None = None,
                 next_step: Callable[[str, Any, Any], dict | None] | None = None,
                 subscriptions: Subscriptions | None = None,
                 agency_sync: AgencySync | None = None):
        self.db = db
        self.resolve_remote = resolve_remote
        # the local copy of the catalog's agencies read again from the catalog (agency_sync.py)
        self.agency_sync = agency_sync or AgencySync(db, None)
        # agencies the local copy is known to hold: its rows are never deleted, so a code
        # seen there once is not looked up again (one transaction less per event or batch)
        self._known_agencies: set[str] = set()
        self.next_step = next_step
        self.store = store
        self.amqp = amqp
        self.http = http
        self.settings = settings or Settings()
        # read at every send: a rotated secret file is used by the very next attempt
        self.secrets = secrets or SecretStore.from_env()
        self.keys = DeliveryKeys(self.secrets)
        self.subs = subscriptions or Subscriptions(db, store, self.keys, CallbackClient(CallbackPolicy.from_env()),
                                                   self.settings)
        # the dossier events in flight in this process, handled in batches (on_dossier_events)
        self.dossier_batches = Coalescer(self.on_dossier_events, self.on_dossier_event,
                                         max_batch=self.settings.event_batch, parallel=self.settings.event_batches,
                                         name="router: batch of dossier events",
                                         linger_s=self.settings.event_linger_s)

    def _append(self, cur: Any, delivery_id: Any, events: list[NewEvent],
                context: EventContext | None = None, commit: bool = False,
                batch: StatementBatch | None = None) -> None:
        """Append in ``cur``'s transaction; ``commit``: the append is its last statement, and
        commits it in the same round trip (the log's lock is held one wait less); ``batch``:
        the append waits there to be sent with the batch's others (``StatementBatch.send``)."""
        cursor = batch if batch is not None else cur.connection.cursor()
        self.store.append(_stream(delivery_id), None, events, stream_type="delivery",
                          context=context, cursor=CommittingCursor(cursor) if commit else cursor)

    # -- events in -------------------------------------------------------------------------

    def take_dossier_event(self, envelope: Any) -> None:
        """A dossier event from its entrypoint: handled together with the others this process
        has in flight (``on_dossier_events``), alone (``on_dossier_event``) when it is the only
        one or its batch failed. Returns once its effects are committed, so the message's ack
        follows them; a failure of its own escapes (the entrypoint retries it)."""
        self.dossier_batches.submit(envelope)

    def on_dossier_events(self, envelopes: list[Any]) -> list[Any]:
        """Handle a batch of dossier events (``_handle``): one transaction routes and feeds them
        all (the dedupe records, delivery rows, leases, holders, ``DeliveryScheduled`` appends
        and feed entries, every write sent with the commit in one round trip), the first
        attempts are published together under one confirm wait, and one transaction records
        them sent.

        Returns per envelope None (done or dropped) or ``ALONE``, for the caller to handle it
        on its own afterwards: a malformed event id (so it is retried and parked on its own),
        and a second event of a dossier already in the batch (one by one, each event's feed
        entries see the holder its own routing left, as when events come one at a time).
        Raises when the batch failed before its commit; the caller then handles every envelope
        alone, which is safe: nothing of the batch was kept."""
        out: list[Any] = [None] * len(envelopes)
        batch: list[dict] = []
        dossiers: set[str] = set()
        for i, envelope in enumerate(envelopes):
            if not isinstance(envelope, dict) or "event_id" not in envelope:
                log.warning("router: dropping a dossier message without an event id")
                continue
            try:
                event_id_of(envelope)
            except ValueError:
                out[i] = ALONE
                continue
            data = envelope.get("data")
            try:
                code = routing.dossier_code(data if isinstance(data, dict) else {})
            except RoutingError:
                code = None  # unroutable: dropped by the batch as it would be alone
            if code in dossiers:
                out[i] = ALONE
                continue
            if code is not None:
                dossiers.add(code)
            batch.append(envelope)
        if batch:
            self._handle(batch)
        return out

    def on_dossier_event(self, envelope: Any) -> None:
        """Route a dossier event once, feed it once, and make the first attempt of each new
        delivery: ``_handle`` with a batch of one.

        A message without an event id is dropped; a malformed event id (``ValueError``) and any
        failure before the commit escape, so the shared entrypoint retries the message."""
        if not isinstance(envelope, dict) or "event_id" not in envelope:
            log.warning("router: dropping a dossier message without an event id")
            return
        event_id_of(envelope)
        self._handle([envelope])

    def _handle(self, envelopes: list[dict]) -> None:
        """Route and feed dossier events (each with a well-formed event id) in one transaction,
        then make the first attempts of the new deliveries and a delivery run for each agency
        whose feed grew (what fails after the commit is the timers' to finish)."""
        self.learn_agencies(envelopes)
        rows, routes, agencies = self._route_and_feed(envelopes)
        try:
            self._attempt_all(rows, routes)
        except Exception:  # the deliveries are committed: the timer retries them
            log.exception("router: first attempts of %d deliveries failed unexpectedly", len(rows))
        for agency in agencies:
            try:
                self.subs.pump(agency)
            except Exception:  # the entries are committed: the timer delivers them
                log.exception("router: delivery to the subscriptions of %s failed unexpectedly", agency)

    def _route_and_feed(self, envelopes: list[dict]) -> tuple[list[dict], dict[str, Route], list[str]]:
        """Route each event not routed before and feed each event not fed before, in one
        transaction whose writes all go in its last round trip, with the commit (the log's and
        the feed's locks are held for that round trip only). Returns the new deliveries (leased
        to this worker), the routes of their agencies, and the agencies whose feed grew.

        The routing and the feed keep their own dedupe records (``router.dossier``,
        ``router.feed``), so events routed or fed by an earlier version of this code are still
        recognised; the feed reads the dossiers' holders as the routing leaves them."""
        routed = [e for e in envelopes if e.get("event_type") in routing.ROUTED_EVENTS]
        chains = [self.chain_hint(e) for e in routed]
        fields = [self.subs.field_hint(e) if e.get("event_type") in ("DossierSubmitted", "DossierForwarded")
                  else None for e in envelopes]
        codes, agencies = _named(envelopes)
        with self.db.transaction() as cur:
            writes = StatementBatch(cur.connection.cursor())
            reads = repository.read_batch(cur, {ROUTING: [event_id_of(e) for e in routed],
                                                FEED: [event_id_of(e) for e in envelopes]}, codes, agencies)
            plan = self._plan(cur, _fresh(reads.claimed[ROUTING], list(zip(routed, chains, strict=True))),
                              lease=True, writes=writes, reads=reads)
            feeding = _fresh(reads.claimed[FEED], list(zip(envelopes, fields, strict=True)))
            batch = self.subs.begin_batch(cur, [e for e, _ in feeding], reads, writes,
                                          {code: held[0] for code, held in plan.holders.items()})
            for envelope, field_hint in feeding:
                self.subs.accept(cur, envelope, field_hint, batch)
            self.subs.commit_batch(batch)
        # a delivery run for each agency whose feed grew, unless it was seen to have no subscription
        grown = sorted({e["agency_code"] for e in batch.entries})
        return plan.created(writes), plan.routes, [a for a in grown if a not in reads.agencies or a in reads.subscribed]

    def on_agency_event(self, envelope: Any) -> None:
        """Apply a catalog agency event to the local copy, once."""
        if isinstance(envelope, dict) and "event_id" in envelope:
            handle_once(self.db, "router.catalog", envelope, self.mirror_agency)

    # -- routing ---------------------------------------------------------------------------

    def learn_agencies(self, envelopes: list[dict]) -> None:
        """Ask the catalog (``resolve_agency`` over RPC) about the agencies these events name
        that the local copy has never seen (one read for all of them): catalog events published
        before the router first subscribed never reach it. Best effort, before the routing
        transaction: without an answer an event is routed to the agency it names."""
        if self.resolve_remote is None:
            return
        codes: list[str] = []
        for envelope in envelopes:
            if not isinstance(envelope, dict):
                continue
            data = envelope.get("data")
            try:
                code = routing.addressed_agency(str(envelope.get("event_type")),
                                               data if isinstance(data, dict) else {}, None)
            except RoutingError:
                continue
            if code not in codes and code not in self._known_agencies:
                codes.append(code)
        if not codes:
            return
        with self.db.transaction() as cur:
            known = repository.known_agencies(cur, codes)
        self._known_agencies |= known
        for code in codes:
            if code not in known:
                self._learn(code)

    def _learn(self, code: str) -> None:
        try:
            final = self.resolve_remote(code)
        except NotFound:  # unknown to the catalog: remember that, or every event would ask again
            final = None
        except Exception as exc:  # the catalog is unavailable: ask again next time
            log.info("router: catalog could not resolve %s: %s", code, type(exc).__name__)
            return
        with self.db.transaction() as cur:
            if final and final != code:
                repository.ensure_agency(cur, final, "active", None)
                repository.ensure_agency(cur, code, "dissolved", final)
            else:
                repository.ensure_agency(cur, code, "active", None)

    def chain_hint(self, envelope: dict) -> dict | None:
        """The next step of a liên thông chain for a submitted dossier, from the catalog
        (``next_step``): the next procedure and its agency for the applicant's place.
        Best effort, before the routing transaction: without an answer there is no hint."""
        if self.next_step is None or not isinstance(envelope, dict) or \
                envelope.get("event_type") != "DossierSubmitted":
            return None
        data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
        procedure = data.get("procedure") if isinstance(data.get("procedure"), dict) else {}
        applicant = data.get("applicant") if isinstance(data.get("applicant"), dict) else {}
        if not isinstance(procedure.get("code"), str):
            return None
        try:
            return self.next_step(procedure["code"], applicant.get("province"), applicant.get("ward"))
        except Exception as exc:  # unknown procedure, place, or the catalog is unavailable
            log.info("router: no chain hint for %s: %s", procedure["code"], type(exc).__name__)
            return None

    def route(self, cur: Any, envelope: dict, chain: dict | None = None, lease: bool = False,
              commit: bool = False) -> list[str]:
        """Turn one dossier event into scheduled deliveries, in ``cur``'s transaction.

        Returns the new delivery ids; a message that cannot be routed is logged and dropped
        (redelivering it would never succeed). ``chain`` (from ``chain_hint``) goes with a
        submission to its agency. With ``lease`` the new deliveries are leased to the caller
        in the same transaction, for ``attempt(..., leased=True)`` right after the commit
        (one write transaction fewer per delivery). With ``commit`` the last round trip (the
        holder's update and the log appends) also commits the transaction (the caller runs
        nothing after it).
        """
        return self.route_many(cur, [(envelope, chain)], lease, commit)

    def route_many(self, cur: Any, items: list[tuple[dict, dict | None]], lease: bool = False,
                   commit: bool = False) -> list[str]:
        """``route`` for several events ``(envelope, chain)``, in order, in ``cur``'s transaction:
        one read each of the dossiers' holders, the agencies' successors and each agency's
        route, then the holders' updates, the delivery rows and their ``DeliveryScheduled``
        appends (``schedule_deliveries``, one statement) in one round trip, with the commit
        when ``commit``."""
        writes = StatementBatch(cur.connection.cursor())
        plan = self._plan(cur, items, lease, writes)
        writes.send(commit=commit)
        return [str(row["delivery_id"]) for row in plan.created(writes)]

    def _plan(self, cur: Any, items: list[tuple[dict, dict | None]], lease: bool,
              writes: StatementBatch, reads: repository.BatchReads | None = None) -> RoutePlan:
        """What ``route_many`` does, its writes (the holders' updates and the appends) left
        waiting in ``writes`` for the caller to send. With ``reads`` (``read_batch``, in the same
        transaction) the holders, successors and routes read there are used, and only what it
        did not read is read here."""
        loaded: list[tuple[dict, dict, str, dict | None]] = []
        for envelope, chain in items:
            try:
                env = _ENVELOPE.load(envelope, unknown="include")
                loaded.append((envelope, env, routing.dossier_code(env["data"]), chain))
            except (ValidationError, RoutingError) as exc:
                _unroutable(envelope, exc)
        if not loaded:
            return RoutePlan()
        codes = sorted({code for _, _, code, _ in loaded})
        if reads is not None and reads.codes.issuperset(codes):
            holders = {code: (row["agency_code"], row["stream_version"])
                       for code, row in reads.dossiers.items() if code in codes}
        else:
            holders = repository.dossier_holders(cur, codes)
        successors = reads.successors if reads is not None else repository.successors(cur)
        routes: dict[str, Route] = {}
        moves: list[tuple[str, str, int]] = []  # the holders' updates
        rows: dict[str, dict] = {}
        scheduled: list[tuple[str, dict, EventContext]] = []
        for envelope, env, code, chain in loaded:
            known = holders.get(code)
            holder = known[0] if known else None
            try:
                targets = routing.recipients(env["event_type"], env["data"], holder, successors)
            except RoutingError as exc:
                _unroutable(envelope, exc)
                continue
            if env["event_type"] in ("DossierSubmitted", "DossierForwarded") or holder is None:
                moves.append((code, targets[0][0], env["stream_version"]))
                if known is None or known[1] < env["stream_version"]:  # what the update does
                    holders[code] = (targets[0][0], env["stream_version"])
            context = EventContext(correlation_id=env.get("correlation_id"), causation_id=str(env["event_id"]))
            for agency, addressed in targets:
                if agency not in routes:
                    known_route = reads.routes.get(agency) if reads is not None and agency in reads.routes \
                        else repository.get_route(cur, agency)
                    routes[agency] = known_route or Route(agency)
                delivery = str(routing.delivery_id(env["event_id"], agency))
                if delivery in rows:
                    continue
                rows[delivery] = {
                    "delivery_id": delivery, "dossier_code": code, "agency_code": agency, "addressed_to": addressed,
                    "event_id": str(env["event_id"]), "event_type": env["event_type"],
                    "channel": routes[agency].channel,
                    "body": routing.delivery_body(delivery, agency, addressed, envelope,
                                                  chain if env["event_type"] == "DossierSubmitted" else None)}
                scheduled.append((delivery, {
                    "delivery_id": delivery, "dossier_code": code, "agency_code": agency,
                    "event_id": str(env["event_id"]), "event_type": env["event_type"],
                    "channel": routes[agency].channel, "addressed_to": addressed}, context))
        for code, agency, version in sorted(moves, key=lambda m: m[0]):  # rows locked in one order
            repository.set_dossier_holder(writes, code, agency, version)
        planned = [{**rows[delivery], "status": "pending", "attempts": 1 if lease else 0}
                   for delivery, _, _ in scheduled]  # as inserted, the lease's attempt counted
        if planned:  # the rows and their appends (the log's lock) come last
            repository.schedule_deliveries(
                writes, planned, self.settings.lease_s if lease else None,
                [_stream(delivery) for delivery, _, _ in scheduled],
                [self.store.encode([NewEvent("DeliveryScheduled", payload)], context)
                 for _, payload, context in scheduled])
        return RoutePlan(planned, routes, holders, successors)

    # -- attempts --------------------------------------------------------------------------

    def attempt(self, delivery_id: str, leased: bool = False) -> str | None:
        """Try one due delivery now; returns its new status, or None when it was not due.

        ``leased``: the caller holds the lease already (``route(..., lease=True)``)."""
        with self.db.transaction() as cur:
            if leased:
                row = repository.get_delivery(cur, delivery_id)
                row = row if row is not None and row["status"] == "pending" else None
            else:
                row = repository.lease(cur, delivery_id, self.settings.lease_s)
            route = (repository.get_route(cur, row["agency_code"]) if row else None)
        if row is None:
            return None
        return self._attempt_row(row, route or Route(row["agency_code"]))

    def _attempt_row(self, row: dict, route: Route) -> str:
        """Send a leased delivery on its route and record the outcome; its new status."""
        attempt = row["attempts"]  # counted when the lease was taken
        body = encode_body(row["body"])
        try:
            if not route.active:
                raise DeliveryFailed("route: the agency's route is inactive")
            binding = self._binding(row, body)
            if route.channel == "http":
                secret, previous = self.secrets.pair(route.secret_ref)
                if not secret:
                    raise DeliveryFailed("http: the route's secret is not configured")
                self.http.send(route.endpoint or "", secret, body, str(row["delivery_id"]), previous,
                               {f"ce-{k}": str(v) for k, v in binding.items() if k != HEADER} |
                               ({HEADER: binding[HEADER]} if HEADER in binding else {}))
            else:
                m = self._outgoing(row, body, binding)
                self.amqp.send(m.agency_code, m.event_type, m.body, m.delivery_id, m.headers)
        except DeliveryFailed as exc:
            return self._failed(row, attempt, str(exc))
        return self._sent(row, route.channel, attempt)

    def _outgoing(self, row: dict, body: bytes, binding: dict[str, Any]) -> Outgoing:
        return Outgoing(row["agency_code"], row["event_type"], body, str(row["delivery_id"]),
                        {(k if k == HEADER else f"cloudEvents:{k}"): v for k, v in binding.items()})

    def _attempt_all(self, rows: list[dict], routes: dict[str, Route]) -> None:
        """The first attempts of deliveries just routed with their lease (``attempt(...,
        leased=True)`` for each; ``rows`` as inserted, ``routes`` as read in the same
        transaction): those to active AMQP routes published together, their confirms awaited
        once, and recorded sent in one transaction; the others one by one."""
        if not rows:
            return
        batch: list[tuple[dict, Outgoing]] = []
        for row in rows:
            route = routes.get(row["agency_code"]) or Route(row["agency_code"])
            try:
                if route.active and route.channel == "amqp":
                    body = encode_body(row["body"])
                    batch.append((row, self._outgoing(row, body, self._binding(row, body))))
                else:
                    self._attempt_row(row, route)
            except Exception:  # the delivery is committed: the timer retries it
                log.exception("router: first attempt of %s failed unexpectedly", row["delivery_id"])
        errors = self.amqp.send_many([m for _, m in batch])
        for (row, _), error in zip(batch, errors, strict=True):
            if error is not None:
                try:
                    self._failed(row, row["attempts"], error)
                except Exception:  # its lease runs out: the timer tries it again
                    log.exception("router: recording the failed attempt of %s failed", row["delivery_id"])
        self._sent_all([row for (row, _), error in zip(batch, errors, strict=True) if error is None])

    def _sent_all(self, rows: list[dict]) -> None:
        """``_sent`` for AMQP deliveries, in one transaction sent in one round trip."""
        if not rows:
            return
        with self.db.transaction() as cur:
            writes = StatementBatch(cur.connection.cursor())
            repository.mark_sent_many(writes, [(str(r["delivery_id"]), r["attempts"]) for r in rows], "amqp")
            for row in rows:
                self._append(cur, row["delivery_id"], [NewEvent("DeliverySent", {
                    **self._ids(row), "channel": "amqp", "attempt": row["attempts"]})], batch=writes)
            writes.send(commit=True)

    def _binding(self, row: dict, body: bytes) -> dict[str, Any]:
        """A route delivery as a CloudEvent in binary mode (the body is its data): the context
        attributes for the ``ce-*`` HTTP headers or ``cloudEvents:*`` AMQP properties, and the
        detached JWS over the body when a delivery key is configured."""
        attributes = delivery_attributes(row)
        # without a key the HMAC signature (http) and the broker (amqp) still authenticate it
        with contextlib.suppress(NoDeliveryKey):
            attributes[HEADER] = self.keys.sign(body)
        return attributes

    def _ids(self, row: dict) -> dict:
        return {"delivery_id": str(row["delivery_id"]), "dossier_code": row["dossier_code"],
                "agency_code": row["agency_code"]}

    def _sent(self, row: dict, channel: str, attempt: int) -> str:
        acknowledged = channel == "http"  # a 2xx from the agency's own endpoint
        events = [NewEvent("DeliverySent", {**self._ids(row), "channel": channel, "attempt": attempt})]
        with self.db.transaction() as cur:
            before = repository.mark_sent(cur, str(row["delivery_id"]), channel, attempt, acknowledged)
            if before == "acknowledged":  # the agency confirmed before this outcome was recorded
                acknowledged = True
            elif acknowledged:
                events.append(NewEvent("DeliveryAcknowledged", {**self._ids(row), "via": "http_2xx"}))
            self._append(cur, row["delivery_id"], events, commit=True)
        return "acknowledged" if acknowledged else "sent"

    def _failed(self, row: dict, attempt: int, error: str) -> str:
        policy = self.settings.policy
        now = dt.datetime.now(dt.UTC)
        with self.db.transaction() as cur:
            if policy.exhausted(attempt):
                if not repository.mark_failed(cur, str(row["delivery_id"]), attempt, error, None):
                    return "acknowledged"
                self._append(cur, row["delivery_id"], [NewEvent("DeliveryDeadLettered", {
                    **self._ids(row), "attempts": attempt, "error": error[:500]})])
                log.warning("router: delivery %s dead-lettered after %d attempts: %s",
                            row["delivery_id"], attempt, error)
                return "dead"
            next_at = next_attempt_at(now, attempt, policy)
            if not repository.mark_failed(cur, str(row["delivery_id"]), attempt, error, next_at):
                return "acknowledged"
            self._append(cur, row["delivery_id"], [NewEvent("DeliveryAttemptFailed", {
                **self._ids(row), "attempt": attempt, "error": error[:500],
                "next_attempt_at": next_at.isoformat()})])
        return "pending"

    def run_due(self) -> int:
        """Attempt every delivery whose time has come (driven by the service's timer)."""
        with self.db.transaction() as cur:
            ids = repository.due(cur, self.settings.batch)
        done = 0
        for delivery_id in ids:
            try:
                if self.attempt(delivery_id) is not None:
                    done += 1
            except Exception:  # one broken row must not stop the others
                log.exception("router: attempt of %s failed unexpectedly", delivery_id)
        return done

    # -- operators and agencies ------------------------------------------------------------

    def redeliver(self, delivery_id: Any, context: dict | None = None) -> dict:
        """Put a dead letter back on the schedule and try it at once."""
        data = _load(schemas.DeliveryIdInput(), {"delivery_id": delivery_id})
        return self._redeliver(str(data["delivery_id"]), event_context(context))

    def redeliver_all(self, agency_code: Any = None, context: dict | None = None) -> list[dict]:
        """Every dead letter (of one agency when named) back on the schedule, up to 1000."""
        query = _load(schemas.DeadLetterQuery(), {"agency_code": agency_code, "limit": 1000})
        with self.db.transaction() as cur:
            ids = [str(r["delivery_id"]) for r in queries.dead_letters(cur, query["agency_code"], 1000)]
        return [self._redeliver(i, event_context(context)) for i in ids]

    def _redeliver(self, delivery_id: str, context: EventContext) -> dict:
        with self.db.transaction() as cur:
            revived = repository.revive(cur, delivery_id)
            if revived is None:
                row = repository.get_delivery(cur, delivery_id)
                if row is None:
                    raise NotFound("delivery_not_found", "no such delivery")
                raise Conflict("delivery_not_dead", f"the delivery is {row['status']}, not dead")
            self._append(cur, delivery_id, [NewEvent("DeliveryRedelivered", {
                "delivery_id": str(revived["delivery_id"]), "dossier_code": revived["dossier_code"],
                "agency_code": revived["agency_code"],
                "previous_attempts": revived["previous_attempts"]})], context)
        status = self.attempt(delivery_id) or "pending"
        return {"delivery_id": delivery_id, "status": status}

    def acknowledge(self, delivery_id: Any, agency_code: Any) -> dict:
        """An agency system confirms a delivery it took from its queue (idempotent).

        Accepted in any state: the agency holding the message is the proof. It can come
        before the router has recorded the attempt as sent (the broker hands the message on
        before the router's own commit), or for a delivery given up on whose last copy did
        get through; either way it is no longer retried or dead.
        """
        data = _load(schemas.AcknowledgeInput(), {"delivery_id": delivery_id, "agency_code": agency_code})
        delivery_id, agency_code = str(data["delivery_id"]), data["agency_code"]
        with self.db.transaction() as cur:
            row = repository.get_delivery(cur, delivery_id, for_update=True)
            if row is None or row["agency_code"] != agency_code:
                raise NotFound("delivery_not_found", "no such delivery for this agency")
            if row["status"] == "acknowledged":
                return {"delivery_id": delivery_id, "status": "acknowledged"}
            repository.mark_acknowledged(cur, delivery_id)
            self._append(cur, delivery_id, [NewEvent("DeliveryAcknowledged", {
                **self._ids(row), "via": "agency_ack"})])
        return {"delivery_id": delivery_id, "status": "acknowledged"}

    def secret_status(self, agency_code: Any) -> dict:
        """Where the route's signing secret (and a previous one) would be read from right
        now, and a secret file's age; never the secret itself."""
        agency_code = _load(schemas.AgencyCodeInput(), {"agency_code": agency_code})["agency_code"]
        with self.db.transaction() as cur:
            route = repository.get_route(cur, agency_code)
        if route is None:
            raise NotFound("route_not_found", "no route for this agency")
        result: dict[str, Any] = {"agency_code": agency_code, "channel": route.channel,
                                  "secret_ref": route.secret_ref, "secrets_dir": self.secrets.directory is not None}
        if not route.secret_ref:
            return {**result, "source": "missing", "file_age_s": None, "previous": None}
        current = self.secrets.status(route.secret_ref).as_dict()
        previous = self.secrets.status(previous_ref(route.secret_ref)).as_dict()
        return {**result, "source": current["source"], "file_age_s": current["file_age_s"],
                "previous": previous if previous["source"] != "missing" else None}

    def configure_route(self, context: dict | None, data: Any) -> dict:
        """Set an agency's delivery channel (an AMQP route's queue is declared at once)."""
        route = Route(**_load(schemas.RouteInput(), data))
        if route.channel == "http" and not route.endpoint:
            raise InvalidInput("endpoint_required", "an http route needs a callback URL")
        with self.db.transaction() as cur:
            repository.save_route(cur, route)
            self.store.append(f"route-{route.agency_code}", None, [NewEvent("RouteConfigured", {
                "agency_code": route.agency_code, "channel": route.channel,
                "endpoint": route.endpoint, "secret_ref": route.secret_ref, "active": route.active,
            })], stream_type="route", context=event_context(context), cursor=cur.connection.cursor())
        if route.channel == "amqp" and route.active:
            try:
                self.amqp.declare(route.agency_code)  # the queue exists before the first delivery
            except Exception as exc:  # the next delivery declares it again
                log.warning("router: could not declare the queue of %s: %s", route.agency_code, exc)
        return {"agency_code": route.agency_code, "channel": route.channel,
                "endpoint": route.endpoint, "secret_ref": route.secret_ref, "active": route.active}

    def mirror_agency(self, cur: Any, envelope: dict) -> None:
        """Keep the local copy of the catalog's agencies (for successor routing)."""
        data = envelope.get("data") or {}
        code = data.get("code")
        if not isinstance(code, str) or not code:
            return
        version = envelope.get("stream_version")
        version = version if isinstance(version, int) else 0
        if envelope.get("event_type") == "AgencyDissolved":
            repository.upsert_agency(cur, code, None, "dissolved", data.get("successor"), version)
        else:
            status = data.get("status") if data.get("status") in ("active", "dissolved") else "active"
            repository.upsert_agency(cur, code, data.get("name"), status, data.get("successor"), version)

    # -- queries ---------------------------------------------------------------------------

    def list_routes(self) -> list[dict]:
        with self.db.transaction() as cur:
            return schemas.RouteOut(many=True).dump(queries.list_routes(cur))

    def deliveries_for(self, dossier_code: Any) -> list[dict]:
        code = _load(schemas.DossierCodeInput(), {"dossier_code": dossier_code})["dossier_code"]
        with self.db.transaction() as cur:
            return schemas.DeliveryOut(many=True).dump(queries.deliveries_for(cur, code))

    def dead_letters(self, agency_code: Any = None, limit: Any = 100) -> list[dict]:
        query = _load(schemas.DeadLetterQuery(), {"agency_code": agency_code, "limit": limit})
        with self.db.transaction() as cur:
            rows = queries.dead_letters(cur, query["agency_code"], query["limit"])
        return schemas.DeliveryOut(many=True).dump(rows)

    def agency_deliveries(self, agency_code: Any, status: Any = None, dossier_code: Any = None,
                          limit: Any = 100) -> list[dict]:
        """One agency's own intake (the gateway passes the caller's agency, never a chosen one)."""
        query = _load(schemas.AgencyDeliveriesQuery(), {"agency_code": agency_code, "status": status,
                                                        "dossier_code": dossier_code, "limit": limit})
        with self.db.transaction() as cur:
            rows = queries.agency_deliveries(cur, query["agency_code"], query["status"], query["dossier_code"],
                                             query["limit"])
        return schemas.DeliveryOut(many=True).dump(rows)

    # -- subscriptions ---------------------------------------------------------------------

    def run_subscriptions(self) -> int:
        """Release events held too long, then deliver every due subscription (the timer)."""
        self.subs.release_held()
        return self.subs.pump()

    def create_subscription(self, context: dict | None, agency_code: Any, body: Any) -> dict:
        agency = _load(schemas.AgencyCodeInput(), {"agency_code": agency_code})["agency_code"]
        return self.subs.create(event_context(context), agency, body)

    def end_subscription(self, context: dict | None, agency_code: Any, subscription_id: Any) -> dict:
        return self.subs.end(event_context(context), agency_code, subscription_id)

    def pause_subscription(self, context: dict | None, subscription_id: Any, paused: bool) -> dict:
        return self.subs.set_paused(event_context(context), subscription_id, paused)

    def redeliver_subscription(self, context: dict | None, subscription_id: Any, from_position: Any) -> dict:
        """Rewind to ``from_position`` and deliver at once (the timer carries on if it fails)."""
        result = self.subs.rewind(event_context(context), subscription_id, from_position)
        self.subs.deliver(result["id"])
        return self.subs.get(None, result["id"])

    def delivery_stats(self) -> dict[str, int]:
        with self.db.transaction() as cur:
            return queries.counts(cur)
