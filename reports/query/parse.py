"""Parse and validate a Stats API v2 query body into a `Query`, or raise a `QueryError` naming the field.

The checks follow Plausible's query parser, with its messages where it has
them: unknown metrics and dimensions, conversion rates without goals, session
metrics with event dimensions, order_by entries that are not queried, and so on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from reports.query import dates, filters
from reports.query import dimensions as dims
from reports.query import metrics as mets
from reports.query.errors import QueryError
from reports.query.params import wildcard_regex

MAX_LIMIT = 10_000
COMPARISON_MODES = ("previous_period", "year_over_year", "custom")
INCLUDE_KEYS = ("time_labels", "total_rows", "comparisons", "imports")


@dataclass(frozen=True)
class Goal:
    name: str  # display name: the event name, or "Visit /path*"
    event: str | None = None
    page_regex: str | None = None


@dataclass
class Query:
    site: str
    metrics: list[str]
    dimensions: list[str]
    filters: list[tuple]
    order_by: list[tuple[str, str]]
    period: dates.Period
    tz_name: str
    goals: list[Goal] = field(default_factory=list)
    comparison: dates.Period | None = None
    time_labels: bool = False
    total_rows: bool = False
    limit: int = MAX_LIMIT
    offset: int = 0
    echo: dict = field(default_factory=dict)

    @property
    def time_dimension(self) -> str | None:
        return next((d for d in self.dimensions if dims.is_time(d)), None)


def parse_goals(raw, where: str) -> list[Goal]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise QueryError(where, "goals must be a list like [{event = \"signup\"}, {page = \"/blog/*\"}]")
    out = []
    for g in raw:
        if not isinstance(g, dict) or len({"event", "page"} & set(g)) != 1:
            raise QueryError(where, f"invalid goal {g!r}: give exactly one of event or page")
        if set(g) - {"event", "page", "display_name"}:
            raise QueryError(where, f"invalid goal {g!r}: only event, page and display_name are known")
        if "event" in g:
            if not isinstance(g["event"], str) or not g["event"]:
                raise QueryError(where, f"invalid goal {g!r}: event must be a non-empty string")
            out.append(Goal(g.get("display_name") or g["event"], event=g["event"]))
        else:
            page = g["page"]
            if not isinstance(page, str) or not page.startswith("/"):
                raise QueryError(where, f"invalid goal {g!r}: page must be a path starting with /")
            out.append(Goal(g.get("display_name") or f"Visit {page}", page_regex=wildcard_regex(page)))
    return out


def _list_of_str(body: dict, key: str, required: bool) -> list[str]:
    value = body.get(key)
    if value is None:
        if required:
            raise QueryError(key, "is required")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryError(key, "must be a list of strings")
    if len(set(value)) != len(value):
        raise QueryError(key, f"{key} must not repeat entries")
    return value


def parse(body: dict, site_settings: dict, first_seen: Callable[[str], dt.date | None],
          known_sites: list[str] | None = None) -> Query:
    if not isinstance(body, dict):
        raise QueryError("body", "must be a JSON object")
    unknown = set(body) - {"site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include",
                           "pagination", "date", "goals", "format"}
    if unknown:
        raise QueryError(sorted(unknown)[0], "unknown field")
    site = body.get("site_id")
    if not isinstance(site, str) or not site.strip():
        raise QueryError("site_id", "is required, e.g. \"example.com\"")
    site = site.strip().lower()
    if known_sites and site not in known_sites:
        raise QueryError("site_id", f"unknown site {site!r}")

    metrics = _list_of_str(body, "metrics", True)
    if not metrics:
        raise QueryError("metrics", "at least one metric is required")
    for m in metrics:
        if m not in mets.ALL:
            raise QueryError("metrics", f"unknown metric {m!r}")

    tz_name = site_settings.get("timezone") or "UTC"
    tz = dates.zone(tz_name)
    today = dates.parse_day(body["date"], "date") if body.get("date") is not None else dt.datetime.now(tz).date()
    if "date_range" not in body:
        raise QueryError("date_range", "is required, e.g. \"7d\" or [\"2026-11-01\", \"2026-11-23\"]")
    period = dates.resolve(body["date_range"], today, tz, None if body["date_range"] != "all" else first_seen(site))

    raw_dims = _list_of_str(body, "dimensions", False)
    for d in raw_dims:
        if not dims.known(d):
            raise QueryError("dimensions", f"unknown dimension {d!r}")
    if sum(dims.is_time(d) for d in raw_dims) > 1:
        raise QueryError("dimensions", "at most one time dimension")
    dimensions = [dates.auto_interval(period) if d == "time" else d for d in raw_dims]

    raw_filters = body.get("filters") or []
    if not isinstance(raw_filters, list):
        raise QueryError("filters", "must be a list of filters")
    trees = [filters.parse(f) for f in raw_filters]

    goals = parse_goals(site_settings.get("goals"), "goals (site settings)") + parse_goals(body.get("goals"), "goals")
    names = [g.name for g in goals]
    for tree in trees:
        if tree[0] == "cmp" and tree[2] == dims.GOAL and tree[1] == "is":
            for value in tree[3]:
                if value not in names:
                    raise QueryError("filters", f"the goal {value!r} is not configured for this site")
    nested = set().union(*(filters.dimensions_in(t) for t in trees if t[0] != "cmp")) if trees else set()
    if dims.GOAL in nested:
        raise QueryError("filters", "dimension `event:goal` can only be filtered at the top level")

    _validate_metrics(metrics, dimensions, trees)
    order_by = _order_by(body.get("order_by"), metrics, dimensions)
    include = body.get("include") or {}
    if not isinstance(include, dict):
        raise QueryError("include", "must be an object")
    for key in include:
        if key not in INCLUDE_KEYS:
            raise QueryError(f"include.{key}", "unknown option")
    for key in ("time_labels", "total_rows", "imports"):
        if not isinstance(include.get(key, False), bool):
            raise QueryError(f"include.{key}", "must be true or false")
    if include.get("time_labels") and not any(dims.is_time(d) for d in dimensions):
        raise QueryError("include.time_labels", "requires a time dimension")
    comparison = _comparison(include.get("comparisons"), period, tz)

    pagination = body.get("pagination") or {}
    if not isinstance(pagination, dict) or set(pagination) - {"limit", "offset"}:
        raise QueryError("pagination", "must be an object with limit and offset")
    limit, offset = pagination.get("limit", MAX_LIMIT), pagination.get("offset", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("pagination.limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise QueryError("pagination.offset", "must be a whole number >= 0")

    echo = {
        "site_id": site, "metrics": metrics, "date_range": period.echo(), "filters": raw_filters,
        "dimensions": dimensions, "order_by": [list(o) for o in order_by],
        "include": {k: v for k, v in include.items() if v}, "pagination": {"limit": limit, "offset": offset},
    }
    if comparison:
        echo["comparison_date_range"] = comparison.echo()
    return Query(site=site, metrics=metrics, dimensions=dimensions, filters=trees, order_by=order_by, period=period,
                 tz_name=tz_name, goals=goals, comparison=comparison, time_labels=bool(include.get("time_labels")),
                 total_rows=bool(include.get("total_rows")), limit=limit, offset=offset, echo=echo)


def _validate_metrics(metrics: list[str], dimensions: list[str], trees: list[tuple]) -> None:
    used = set().union(*(filters.dimensions_in(t) for t in trees)) if trees else set()
    top_level = {t[2] for t in trees if t[0] == "cmp"}
    for m in metrics:
        if m in ("conversion_rate", "group_conversion_rate") and dims.GOAL not in dimensions and dims.GOAL not in used:
            raise QueryError("metrics", f"metric `{m}` can only be queried with event:goal filters or dimensions")
        if m == "scroll_depth" and "event:page" not in dimensions and "event:page" not in top_level:
            raise QueryError("metrics", "metric `scroll_depth` can only be queried with event:page filters or "
                                        "dimensions")
        if m == "views_per_visit" and "event:page" in used:
            raise QueryError("metrics", "metric `views_per_visit` cannot be queried with a filter on `event:page`")
    session = [m for m in metrics if m in mets.SESSION_ONLY]
    event_dims = [d for d in dimensions if dims.is_event(d) and d != "event:page"]
    if session and event_dims:
        raise QueryError("metrics", f"session metric(s) `{', '.join(session)}` cannot be queried along with event "
                                    f"dimensions ({', '.join(event_dims)})")


def _order_by(raw, metrics: list[str], dimensions: list[str]) -> list[tuple[str, str]]:
    if raw is None:
        time_dim = next((d for d in dimensions if dims.is_time(d)), None)
        return ([(time_dim, "asc")] if time_dim else []) + [(metrics[0], "desc")]
    if not isinstance(raw, list):
        raise QueryError("order_by", "must be a list of [metric or dimension, \"asc\" | \"desc\"]")
    out = []
    for entry in raw:
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                or entry[1] not in ("asc", "desc")):
            raise QueryError("order_by", f"invalid entry {entry!r}, expected [name, \"asc\" | \"desc\"]")
        name = entry[0]
        if name == "time":
            name = next((d for d in dimensions if dims.is_time(d)), name)
        if name not in metrics and name not in dimensions:
            raise QueryError("order_by", f"invalid entry {entry!r}: not a queried metric or dimension")
        out.append((name, entry[1]))
    return out


def _comparison(raw, period: dates.Period, tz) -> dates.Period | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("mode") not in COMPARISON_MODES:
        raise QueryError("include.comparisons", f"mode must be one of {', '.join(COMPARISON_MODES)}")
    if set(raw) - {"mode", "date_range", "match_day_of_week"}:
        raise QueryError("include.comparisons", "only mode, date_range and match_day_of_week are known")
    custom = None
    if raw["mode"] == "custom":
        value = raw.get("date_range")
        if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
            raise QueryError("include.comparisons.date_range", "custom comparisons need [from, to]")
        custom = dates.pair(value, tz, "include.comparisons.date_range")
    match = raw.get("match_day_of_week", False)
    if not isinstance(match, bool):
        raise QueryError("include.comparisons.match_day_of_week", "must be true or false")
    return dates.comparison(period, raw["mode"], match, custom)
