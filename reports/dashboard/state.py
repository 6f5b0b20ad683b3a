"""The dashboard's state as a query string: period, comparison, filters, graph metric and card tabs.

A view is bookmarkable because everything that shapes it is here, parsed from
and written back to the URL. Unknown or malformed values fall back to the
defaults (a shared link never breaks the page); filters are checked later by
the query layer itself, which names what is wrong.

    ?period=30d&compare=previous_period&metric=visitors&f=is,visit:source,Google&pages=entry
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from reports.query import dates
from reports.query.filters import COMPARE

PERIODS = {  # URL value -> label
    "day": "Today", "yesterday": "Yesterday", "7d": "Last 7 days", "30d": "Last 30 days", "month": "This month",
    "lastmonth": "Last month", "year": "This year", "12mo": "Last 12 months", "all": "All time", "custom": "Custom",
}
SHORTCUTS = {"day": "d", "yesterday": "e", "7d": "7", "30d": "3", "month": "m", "lastmonth": "l", "year": "y",
             "all": "a"}
COMPARES = {"previous_period": "Previous period", "year_over_year": "Year over year", "off": "No comparison"}
GRAPH_METRICS = {"visitors": "Unique visitors", "visits": "Total visits", "pageviews": "Total pageviews"}
TAB_KEYS = ("pages", "sources", "locations", "devices", "events", "funnel", "prop")
DEFAULT_PERIOD = "30d"


@dataclass(frozen=True)
class Filter:
    op: str
    dim: str
    value: str

    def encode(self) -> str:
        return f"{self.op},{self.dim},{self.value}"

    def api(self) -> list:
        return [self.op, self.dim, [self.value]]


@dataclass(frozen=True)
class State:
    site: str
    period: str = DEFAULT_PERIOD
    date: str | None = None  # "today" as YYYY-MM-DD (pins the view; also what the tests use)
    start: str | None = None  # custom range, inclusive days
    end: str | None = None
    compare: str = "previous_period"
    metric: str = "visitors"
    filters: tuple[Filter, ...] = ()
    tabs: dict = field(default_factory=dict)

    # -- reading the URL ---------------------------------------------------
    @classmethod
    def from_query(cls, site: str, params: dict[str, list[str]]) -> State:
        def one(key: str) -> str | None:
            values = params.get(key) or []
            return values[-1] if values else None

        period = one("period") if one("period") in PERIODS else DEFAULT_PERIOD
        start, end = _day(one("from")), _day(one("to"))
        if period == "custom" and not (start and end and start <= end):
            period, start, end = DEFAULT_PERIOD, None, None
        if period != "custom":
            start = end = None
        filters = []
        for raw in params.get("f") or []:
            parts = raw.split(",", 2)
            if len(parts) == 3 and parts[0] in COMPARE and parts[1]:
                filters.append(Filter(*parts))
        tabs = {k: one(k) for k in TAB_KEYS if one(k)}
        return cls(site=site, period=period, date=_day(one("date")), start=start, end=end,
                   compare=one("compare") if one("compare") in COMPARES else "previous_period",
                   metric=one("metric") if one("metric") in GRAPH_METRICS else "visitors",
                   filters=tuple(filters), tabs=tabs)

    # -- writing it back ---------------------------------------------------
    def params(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.period != DEFAULT_PERIOD:
            out.append(("period", self.period))
        if self.period == "custom":
            out += [("from", self.start or ""), ("to", self.end or "")]
        if self.date:
            out.append(("date", self.date))
        if self.compare != "previous_period":
            out.append(("compare", self.compare))
        if self.metric != "visitors":
            out.append(("metric", self.metric))
        out += [("f", f.encode()) for f in self.filters]
        out += [(k, v) for k, v in sorted(self.tabs.items())]
        return out

    def href(self, **changes) -> str:
        query = urlencode(self.but(**changes).params())
        return f"?{query}" if query else "?"

    def but(self, **changes) -> State:
        tabs = changes.pop("tabs", None)
        new = replace(self, **changes)
        if tabs:
            merged = {**self.tabs, **tabs}
            new = replace(new, tabs={k: v for k, v in merged.items() if v})
        return new

    def with_filter(self, dim: str, value: str) -> str:
        """The link a row makes: this filter replaces any other on the same dimension."""
        kept = tuple(f for f in self.filters if f.dim != dim)
        return self.href(filters=(*kept, Filter("is", dim, value)))

    def without_filter(self, index: int) -> str:
        return self.href(filters=self.filters[:index] + self.filters[index + 1:])

    def tab(self, card: str, default: str) -> str:
        return self.tabs.get(card) or default

    def filter_value(self, dim: str) -> str | None:
        return next((f.value for f in self.filters if f.dim == dim and f.op == "is"), None)

    # -- what the stats API is asked ---------------------------------------
    def today(self, tz_name: str) -> dt.date:
        return dt.date.fromisoformat(self.date) if self.date else dt.datetime.now(dates.zone(tz_name)).date()

    def date_range(self, tz_name: str) -> str | list[str]:
        today = self.today(tz_name)
        if self.period == "yesterday":
            day = (today - dt.timedelta(days=1)).isoformat()
            return [day, day]
        if self.period == "lastmonth":
            last = today.replace(day=1) - dt.timedelta(days=1)
            return [last.replace(day=1).isoformat(), last.isoformat()]
        if self.period == "custom":
            return [self.start, self.end]
        return self.period

    def base(self, tz_name: str) -> dict:
        body: dict = {"site_id": self.site, "date_range": self.date_range(tz_name)}
        if self.date:
            body["date"] = self.date
        return body

    def api_filters(self) -> list[list]:
        return [f.api() for f in self.filters]

    def comparison(self) -> dict | None:
        return None if self.compare == "off" else {"mode": self.compare}


def _day(text: str | None) -> str | None:
    try:
        return dt.date.fromisoformat(text).isoformat() if text else None
    except ValueError:
        return None
