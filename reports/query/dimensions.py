"""The whitelist of dimensions: each name maps to a fixed SQL expression, never to user text.

Event dimensions read the event row (alias `e`). Visit dimensions read the
visit row (alias `s`), which `sql.py` builds by grouping the period's events
by session_id and keeping each visit's first values (`arg_min_null` over the
timestamp, so a first value that is NULL stays NULL). Time dimensions bucket a
local (site time zone) timestamp.
"""

from __future__ import annotations

PAGEVIEW = "name = 'pageview'"

EVENT = {
    "event:name": "e.name",
    "event:page": "e.pathname",
    "event:hostname": "e.hostname",
}

# visit dimension -> (column of the visit row, aggregate over the visit's events, expression on the visit row)
VISIT: dict[str, tuple[str, str, str]] = {
    "visit:entry_page": ("entry_page", f'arg_min_null(pathname, "timestamp") FILTER (WHERE {PAGEVIEW})', ""),
    "visit:exit_page": ("exit_page", f'arg_max_null(pathname, "timestamp") FILTER (WHERE {PAGEVIEW})', ""),
    "visit:entry_page_hostname": ("entry_host", f'arg_min_null(hostname, "timestamp") FILTER (WHERE {PAGEVIEW})', ""),
    "visit:exit_page_hostname": ("exit_host", f'arg_max_null(hostname, "timestamp") FILTER (WHERE {PAGEVIEW})', ""),
    "visit:source": ("source", "", "coalesce(s.source, 'Direct / None')"),
    "visit:referrer": ("referrer", "", "coalesce(s.referrer, 'Direct / None')"),
    "visit:channel": ("channel", "", "coalesce(s.channel, 'Direct')"),
    "visit:utm_source": ("utm_source", "", ""),
    "visit:utm_medium": ("utm_medium", "", ""),
    "visit:utm_campaign": ("utm_campaign", "", ""),
    "visit:utm_term": ("utm_term", "", ""),
    "visit:utm_content": ("utm_content", "", ""),
    "visit:country": ("country", "", ""),
    "visit:region": ("region", "", ""),
    "visit:city": ("city", "", ""),
    "visit:device": ("device", "", ""),
    "visit:browser": ("browser", "", ""),
    "visit:browser_version": ("browser_version", "", ""),
    "visit:os": ("os", "", ""),
    "visit:os_version": ("os_version", "", ""),
}

# Breakdowns by these leave out visits that have no value (untagged traffic), as Plausible does.
SKIP_EMPTY = {"visit:utm_source", "visit:utm_medium", "visit:utm_campaign", "visit:utm_term", "visit:utm_content"}

TIME = ("time", "time:hour", "time:day", "time:week", "time:month")
GOAL = "event:goal"
PROPS = "event:props:"
NONE = "(none)"


def is_time(dim: str) -> bool:
    return dim in TIME


def is_visit(dim: str) -> bool:
    return dim in VISIT


def is_event(dim: str) -> bool:
    return dim in EVENT or dim == GOAL or is_prop(dim)


def is_prop(dim: str) -> bool:
    return dim.startswith(PROPS) and len(dim) > len(PROPS)


def known(dim: str) -> bool:
    return is_time(dim) or is_visit(dim) or is_event(dim)


def visit_column(dim: str) -> str:
    return VISIT[dim][0]


def visit_aggregate(dim: str) -> str:
    column, agg, _ = VISIT[dim]
    return agg or f'arg_min_null({column}, "timestamp")'


def visit_expr(dim: str) -> str:
    column, _, expr = VISIT[dim]
    return expr or f"s.{column}"


def time_expr(dim: str, local_ts: str, first_day: str) -> str:
    """The bucket label, as Plausible writes it; weeks and months start no earlier than the period."""
    if dim == "time:hour":
        return f"strftime(date_trunc('hour', {local_ts}), '%Y-%m-%d %H:00:00')"
    if dim == "time:day":
        return f"strftime({local_ts}::DATE, '%Y-%m-%d')"
    unit = "week" if dim == "time:week" else "month"
    return f"strftime(greatest(date_trunc('{unit}', {local_ts})::DATE, {first_day}::DATE), '%Y-%m-%d')"
