"""Date ranges in the site's time zone, as Plausible reads them, and the periods compared with them.

A range is a half-open pair of aware datetimes [start, end) in the site's
zone; SQL compares UTC instants against it. Calendar ranges end at the close
of their last day (`month`, `year` run to the end of the month/year, as
Plausible's do), and `Nd` ranges are the N whole days before today.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reports.query.errors import QueryError

NAMED = ("day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all")
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Period:
    start: dt.datetime  # aware, site zone
    end: dt.datetime  # exclusive
    whole_days: bool  # built from dates (not from ISO datetimes)

    @property
    def first_day(self) -> dt.date:
        return self.start.date()

    @property
    def last_day(self) -> dt.date:
        return (self.end - dt.timedelta(microseconds=1)).date()

    def echo(self) -> list[str]:
        last = self.end - dt.timedelta(seconds=1) if self.whole_days else self.end - dt.timedelta(microseconds=1)
        return [self.start.isoformat(timespec="seconds"), last.isoformat(timespec="seconds")]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError("timezone", f"unknown time zone {name!r} in the site's settings") from None


def midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz)


def days(first: dt.date, last: dt.date, tz: ZoneInfo) -> Period:
    return Period(midnight(first, tz), midnight(last + DAY, tz), True)


def parse_day(text: object, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QueryError(field, f"invalid date {text!r}, expected YYYY-MM-DD") from None


def _month_end(day: dt.date) -> dt.date:
    nxt = day.replace(day=28) + dt.timedelta(days=4)
    return nxt - dt.timedelta(days=nxt.day)


def _shift_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def resolve(value: object, today: dt.date, tz: ZoneInfo, first_seen: dt.date | None) -> Period:
    """`date_range` → Period. `first_seen` is the day of the site's first event (for `all`)."""
    if isinstance(value, str):
        if value == "day":
            return days(today, today, tz)
        if value in ("7d", "28d", "30d", "91d"):
            n = int(value[:-1])
            return days(today - dt.timedelta(days=n), today - DAY, tz)
        if value == "month":
            return days(today.replace(day=1), _month_end(today), tz)
        if value in ("6mo", "12mo"):
            n = 6 if value == "6mo" else 12
            return days(_shift_months(today, -(n - 1)), _month_end(today), tz)
        if value == "year":
            return days(today.replace(month=1, day=1), today.replace(month=12, day=31), tz)
        if value == "all":
            return days(min(first_seen or today, today), today, tz)
        raise QueryError("date_range", f"invalid date_range {value!r}, expected one of {', '.join(NAMED)} "
                                       "or [from, to]")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return pair(value, tz, "date_range")
    raise QueryError("date_range", f"invalid date_range {value!r}, expected one of {', '.join(NAMED)} or [from, to]")


def pair(value: list[str], tz: ZoneInfo, field: str) -> Period:
    a, b = value
    if len(a) == 10 and len(b) == 10:
        first, last = parse_day(a, field), parse_day(b, field)
        if last < first:
            raise QueryError(field, f"{b} is before {a}")
        return days(first, last, tz)
    try:
        start, stop = dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)
    except ValueError:
        raise QueryError(field, f"invalid date_range {value!r}, expected dates or ISO 8601 datetimes") from None
    if start.tzinfo is None or stop.tzinfo is None:
        raise QueryError(field, "ISO 8601 datetimes need an offset, e.g. 2026-11-01T00:00:00+01:00")
    if stop < start:
        raise QueryError(field, f"{b} is before {a}")
    return Period(start.astimezone(tz), stop.astimezone(tz) + dt.timedelta(microseconds=1), False)


def comparison(period: Period, mode: str, match_day_of_week: bool, custom: Period | None) -> Period:
    """The period a comparison runs over, as Plausible's `previous_period`, `year_over_year`, `custom`."""
    if mode == "custom":
        assert custom is not None
        return custom
    tz = period.start.tzinfo
    first, last = period.first_day, period.last_day
    if not period.whole_days:
        length = period.end - period.start
        if mode == "previous_period":
            return Period(period.start - length, period.start, False)
        return Period(_minus_year_dt(period.start), _minus_year_dt(period.end), False)
    n = (last - first).days + 1
    if mode == "previous_period":
        cfirst = first - dt.timedelta(days=n)
    else:
        cfirst = _minus_year(first)
        n = (_minus_year(last) - cfirst).days + 1
    if match_day_of_week:
        cfirst -= dt.timedelta(days=(cfirst.weekday() - first.weekday()) % 7)
    return days(cfirst, cfirst + dt.timedelta(days=n - 1), tz)  # type: ignore[arg-type]


def _minus_year(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _minus_year_dt(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(_minus_year(moment.date()), moment.timetz())


def auto_interval(period: Period) -> str:
    """What `time` means for this period (Plausible: hours up to 48 h, days up to 40, weeks up to a year)."""
    span = period.end - period.start
    if span <= dt.timedelta(hours=48):
        return "time:hour"
    if span <= dt.timedelta(days=41):
        return "time:day"
    if span <= dt.timedelta(days=366):
        return "time:week"
    return "time:month"


def labels(dim: str, period: Period) -> list[str]:
    """Every bucket of the period, for `include.time_labels` and for pairing comparison rows."""
    out: list[str] = []
    if dim == "time:hour":
        t = period.start.replace(minute=0, second=0, microsecond=0)
        while t < period.end:
            out.append(t.strftime("%Y-%m-%d %H:00:00"))
            t = (t.astimezone(dt.UTC) + dt.timedelta(hours=1)).astimezone(period.start.tzinfo)
        return list(dict.fromkeys(out))
    first, last = period.first_day, period.last_day
    day = first
    while day <= last:
        if dim == "time:day":
            out.append(day.isoformat())
        elif dim == "time:week":
            out.append(max(day - dt.timedelta(days=day.weekday()), first).isoformat())
        else:
            out.append(max(day.replace(day=1), first).isoformat())
        day += DAY
    return list(dict.fromkeys(out))
