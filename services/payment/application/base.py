"""What every group of the payment service's use cases shares: the database, the event log, the
append, the local day and the parsing of days and times."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from portal_common.contracts.payment import SettlementQuery
from portal_common.db import Database
from portal_common.errors import InvalidInput
from portal_common.eventstore import EventLog
from portal_common.eventstore.events import SYSTEM, EventContext, NewEvent, utcnow

log = logging.getLogger("services.payment.application")
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))
APPLICANTS = ("citizen", "business")
STAFF = ("officer", "agency_system")
RETRIES = 4
MAX_FIELDS = 40


def local_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(LOCAL_TZ).date()


def system_context(envelope: dict[str, Any] | None = None) -> EventContext:
    envelope = envelope or {}
    return EventContext(actor=SYSTEM, correlation_id=envelope.get("correlation_id"),
                        causation_id=envelope.get("event_id"))


class Base:
    """The database and event log every use case works on."""

    def __init__(self, db: Database, log_: EventLog):
        self.db = db
        self.log = log_

    def _append(self, cur: Any, stream: str, expected: int | None, decided: list[tuple[str, dict]],
                context: EventContext, now: dt.datetime | None = None) -> None:
        self.log.append(stream, expected, [NewEvent(t, d, occurred_at=now or utcnow()) for t, d in decided],
                        context=context, cursor=cur)


def parse_day(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return SettlementQuery().load({"date": value})["date"]
    except Exception:
        raise InvalidInput("invalid_date", "date must be YYYY-MM-DD.", [{"field": "date", "message": "not a date"}]) \
            from None


def parse_moment(value: Any) -> dt.datetime:
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("invalid_time", "Give an ISO 8601 time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


