"""Working-day arithmetic for appointment dates (weekends and Vietnam's public holidays off).

The appointment date a one-stop shop promises counts only working days: Saturdays, Sundays
and the public holidays of Vietnam (``holidays`` package: New Year, the Lunar New Year days,
Hung Kings, 30/4, 1/5, National Day, and the days off substituted by decree) do not count.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@lru_cache(maxsize=64)
def _holidays_of(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("VN", years=[year]).keys())


def is_working_day(day: dt.date) -> bool:
    """False on weekends and on Vietnam's public holidays."""
    return day.weekday() < 5 and day not in _holidays_of(day.year)


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days after ``start`` (``start`` itself never counts).

    With ``days == 0`` the answer is ``start`` when it is a working day, else the next one.
    """
    if days < 0:
        raise ValueError("days must not be negative")
    day = start
    if days == 0:
        while not is_working_day(day):
            day += dt.timedelta(days=1)
        return day
    remaining = days
    while remaining:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days in the half-open span (start, end]: how much a pause cost the clock."""
    if end <= start:
        return 0
    count = 0
    day = start
    while day < end:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


def local_date(moment: dt.datetime) -> dt.date:
    """The calendar date of an instant in Vietnam (where the office's days are counted)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(LOCAL_TZ).date()
