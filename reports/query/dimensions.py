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


US_HOUR = 3_600_000_000
US_DAY = 86_400_000_000


def time_key(dim: str, local_us: str) -> str:
    """The bucket as a cheap grouping key, from local epoch microseconds (integer arithmetic, no ICU per row)."""
    if dim == "time:hour":
        return f"({local_us}) // {US_HOUR}"
    if dim == "time:day":
        return f"({local_us}) // {US_DAY}"
    if dim == "time:week":  # 1970-01-01 was a Thursday: +3 makes weeks start on Mondays
        return f"(({local_us}) // {US_DAY} + 3) // 7"
    return f"strftime(make_timestamp({local_us}), '%Y-%m-01')"


def time_label(dim: str, key: str, first_day: str) -> str:
    """The bucket label, as Plausible writes it; weeks and months start no earlier than the period."""
    if dim == "time:hour":
        return f"strftime(make_timestamp({key} * {US_HOUR}), '%Y-%m-%d %H:00:00')"
    if dim == "time:day":
        return f"strftime(make_timestamp({key} * {US_DAY}), '%Y-%m-%d')"
    if dim == "time:week":
        return f"strftime(greatest(make_timestamp(({key} * 7 - 3) * {US_DAY})::DATE, {first_day}::DATE), '%Y-%m-%d')"
    return f"strftime(greatest({key}::DATE, {first_day}::DATE), '%Y-%m-%d')"
