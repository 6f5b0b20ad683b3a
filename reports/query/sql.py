"""SQL for one part of a plan: the event query, the visit query or the scroll-depth query.

Each query reads the period's events of one site (`ev`), groups them by
session_id into visit rows (`ses`) when visit values are needed, and then
groups by the requested dimensions. Output columns are `d0..dN` (dimension
values) followed by one column per metric, then hidden helper columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from reports.query import dimensions as dims
from reports.query import fast
from reports.query import filters as flt
from reports.query import metrics as mets
from reports.query.params import Params
from reports.query.parse import Goal

EVENT_COLUMNS = ("name", "pathname", "hostname", "visitor_id", "session_id", '"timestamp"', "interactive")
VISIT_STATS = {
    "visitor_id": "any_value(visitor_id)",
    "s_start": 'min("timestamp")',
    "s_end": 'max("timestamp")',
    "pageviews": "count(*) FILTER (WHERE name = 'pageview')",
    "events": "count(*) FILTER (WHERE name <> 'engagement')",
    "interactions": "count(*) FILTER (WHERE interactive AND name <> 'engagement')",
}


@dataclass
class Scope:
    """What every part of one query shares: the site, the UTC bounds, the zone, the goals."""

    site: str
    start: dt.datetime
    end: dt.datetime
    tz_name: str
    goals: list[Goal]
    first_day: str  # the period's first local day, where weeks and months are clamped


def offsets(tz_name: str, start: dt.datetime, end: dt.datetime) -> list[tuple[int, int]]:
    """[(UTC µs from which it applies, offset µs)] for the zone over [start, end], checked hour by hour."""
    tz = ZoneInfo(tz_name)
    out: list[tuple[int, int]] = []
    t = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    step = dt.timedelta(hours=1)
    while t <= end:
        off = int(t.astimezone(tz).utcoffset().total_seconds()) * 1_000_000
        if not out or out[-1][1] != off:
            out.append((int(t.timestamp()) * 1_000_000, off))
        t += step
    return out or [(0, 0)]


class Builder:
    def __init__(self, scope: Scope, table: str, dimensions: list[str], trees: list[tuple]):
        self.scope, self.table, self.dimensions, self.trees = scope, table, dimensions, trees
        self.p = Params()
        self.visit_columns: dict[str, str] = {}
        self.event_columns: set[str] = set(EVENT_COLUMNS)
        self.join_goals = dims.GOAL in dimensions and table == "events"

    # ---- expressions ----
    def event_expr(self, dim: str) -> str:
        if dim in dims.EVENT:
            return dims.EVENT[dim]
        if dims.is_prop(dim):
            self.event_columns.add("props")
            return f"coalesce(map_extract_value(e.props, {self.p(dim[len(dims.PROPS):])}), '{dims.NONE}')"
        if dim == dims.GOAL:
            return "g.name"
        return self.visit_expr(dim)

    def visit_expr(self, dim: str) -> str:
        column = dims.visit_column(dim)
        self.visit_columns[column] = dims.visit_aggregate(dim)
        if not dims.VISIT[dim][1]:
            self.event_columns.add(column)
        return dims.visit_expr(dim)

    def local_us(self, column: str) -> str:
        """Local epoch microseconds: UTC plus the zone's offset, piecewise across DST changes in the period."""
        segments = offsets(self.scope.tz_name, self.scope.start, self.scope.end)
        us = f"epoch_us({column})"
        if len(segments) == 1:
            return f"{us} + {self.p(segments[0][1])}"
        cases = " ".join(f"WHEN {us} < {self.p(nxt[0])} THEN {self.p(off)}"
                         for (_, off), nxt in zip(segments, segments[1:], strict=False))
        return f"{us} + CASE {cases} ELSE {self.p(segments[-1][1])} END"

    def dim_expr(self, dim: str) -> str:
        if dims.is_time(dim):
            if self.table == "events":
                return dims.time_key(dim, self.local_us('e."timestamp"'))
            self.visit_columns["s_start"] = VISIT_STATS["s_start"]
            return dims.time_key(dim, self.local_us("s.s_start"))
        if self.table == "visits":
            return self.visit_expr("visit:entry_page" if dim == "event:page" else dim)
        return self.event_expr(dim)

    def wrap(self, body: str, columns: list[str]) -> str:
        """Label time buckets after grouping (a few rows) rather than per event."""
        if not any(dims.is_time(d) for d in self.dimensions):
            return body
        first = self.p(self.scope.first_day) if {"time:week", "time:month"} & set(self.dimensions) else ""
        outer = [f"{dims.time_label(d, f'd{i}', first)} AS d{i}" if dims.is_time(d) else f"d{i}"
                 for i, d in enumerate(self.dimensions)]
        return f"SELECT {', '.join(outer + columns)} FROM ({body})"

    def goal_condition(self, goal: Goal, alias: str = "e") -> str:
        if goal.event is not None:
            return f"{alias}.name = {self.p(goal.event)}"
        return f"({alias}.name = 'pageview' AND regexp_full_match({alias}.pathname, {self.p(goal.page_regex)}))"

    def goal_filter(self, tree: tuple) -> str:
        chosen = flt.match_names(tree, [g.name for g in self.scope.goals])
        goals = [g for g in self.scope.goals if g.name in chosen]
        cond = "(" + " OR ".join(self.goal_condition(g) for g in goals) + ")" if goals else "false"
        return f"(NOT {cond})" if tree[1].endswith("_not") else cond

    def condition(self, tree: tuple) -> str:
        return flt.to_sql(tree, self.event_expr, self.p, self.goal_filter)

    # ---- the parts ----
    def _visit_only(self, tree: tuple) -> bool:
        return all(dims.is_visit(d) for d in flt.dimensions_in(tree))

    def where_events(self) -> list[str]:
        return [self.condition(t) for t in self.trees]

    def where_visits(self) -> list[str]:
        """Visit filters apply to the visit row; the rest select visits with an event that matches them all."""
        out, event_trees = [], []
        for tree in self.trees:
            if self._visit_only(tree):
                out.append(flt.to_sql(tree, self.visit_expr, self.p, self.goal_filter))
            else:
                event_trees.append(tree)
        if event_trees:
            conds = " AND ".join(self.condition(t) for t in event_trees)
            used = set().union(*(flt.dimensions_in(t) for t in event_trees))
            join = " JOIN ses s USING (session_id)" if any(dims.is_visit(d) for d in used) else ""
            out.append(f"s.session_id IN (SELECT e.session_id FROM ev e{join} WHERE {conds})")
        return out

    def with_clause(self, visit_stats: tuple[str, ...] = ()) -> str:
        scope = self.scope
        base = (f"ev AS (SELECT {', '.join(sorted(self.event_columns))} FROM events WHERE site = {self.p(scope.site)} "
                f'AND "timestamp" >= {self.p(scope.start)} AND "timestamp" < {self.p(scope.end)} '
                "AND session_id IS NOT NULL)")
        parts = [base]
        columns = dict(self.visit_columns)
        for stat in visit_stats:
            columns[stat] = VISIT_STATS[stat]
        if columns or self.table == "visits":
            columns.setdefault("visitor_id", VISIT_STATS["visitor_id"])
            aggs = ", ".join(f"{agg} AS {col}" for col, agg in columns.items())
            parts.append(f"ses AS (SELECT session_id, {aggs} FROM ev GROUP BY session_id)")
        if self.join_goals:
            rows = [f"({self.p(g.name)}, {self.p(g.event)}, {self.p(g.page_regex)})" for g in self.scope.goals]
            body = f"SELECT * FROM (VALUES {', '.join(rows)})" if rows else "SELECT NULL, NULL, NULL WHERE false"
            parts.append(f"goals(name, event, page_regex) AS ({body})")
        return "WITH " + ",\n".join(parts)


def _select_dims(b: Builder) -> tuple[list[str], str]:
    exprs = [f"{b.dim_expr(d)} AS d{i}" for i, d in enumerate(b.dimensions)]
    skip = [f"d{i} IS NOT NULL" for i, d in enumerate(b.dimensions) if d in dims.SKIP_EMPTY]
    group = f" GROUP BY {', '.join(f'd{i}' for i in range(len(b.dimensions)))}" if b.dimensions else ""
    having = f" HAVING {' AND '.join(skip)}" if skip else ""
    return exprs, group + having


def events_query(scope: Scope, metrics: list[str], dimensions: list[str], trees: list[tuple]) -> tuple[str, dict]:
    b = Builder(scope, "events", dimensions, trees)
    dim_exprs, group = _select_dims(b)
    where = b.where_events()
    cols = [f"{mets.SQL[m][0]} AS m_{m}" for m in metrics]
    if any(m in mets.REVENUE for m in metrics):
        b.event_columns.update(("revenue_amount", "revenue_currency"))
        cols += [f"{c} AS x{i}" for i, c in enumerate(mets.CURRENCY_COLUMNS)]
    if "time_on_page" in metrics:
        b.event_columns.add("engagement_ms")
    joins = " JOIN ses s USING (session_id)" if b.visit_columns else ""
    if b.join_goals:
        joins += (" JOIN goals g ON ((g.event IS NOT NULL AND e.name = g.event) OR (g.page_regex IS NOT NULL AND "
                  "e.name = 'pageview' AND regexp_full_match(e.pathname, g.page_regex)))")
    body = (f"SELECT {', '.join(dim_exprs + cols)} FROM ev e{joins}"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}{group}")
    body = b.wrap(body, [c.rsplit(" AS ", 1)[1] for c in cols])
    return f"{b.with_clause()}\n{body}", b.p


def visits_query(scope: Scope, metrics: list[str], dimensions: list[str], trees: list[tuple],
                 rollups: bool = True) -> tuple[str, dict]:
    """The visit rows' query; `rollups` lets fast.py answer without grouping by session_id when it can."""
    b = Builder(scope, "visits", dimensions, trees)
    if rollups and fast.totals_ok(metrics, dimensions, trees):
        return fast.totals_query(b, metrics), b.p
    dim_exprs, group = _select_dims(b)
    where = b.where_visits()
    stats = set()
    for m in metrics:
        if m in ("pageviews", "views_per_visit"):
            stats.add("pageviews")
        if m == "events":
            stats.add("events")
        if m == "bounce_rate":
            stats.add("interactions")
        if m == "visit_duration":
            stats.update(("s_start", "s_end"))
    cols = [f"{mets.SQL[m][1]} AS m_{m}" for m in metrics]
    body = (f"SELECT {', '.join(dim_exprs + cols)} FROM ses s"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}{group}")
    body = b.wrap(body, [c.rsplit(" AS ", 1)[1] for c in cols])
    if rollups and fast.rows_ok(metrics, dimensions, trees):
        return f"{fast.with_rows(b)}\n{body}", b.p
    return f"{b.with_clause(tuple(sorted(stats)))}\n{body}", b.p


def scroll_query(scope: Scope, dimensions: list[str], trees: list[tuple]) -> tuple[str, dict]:
    """Average over visitors of each visitor's deepest scroll, per group (Plausible's scroll_depth)."""
    b = Builder(scope, "events", dimensions, trees)
    b.event_columns.add("scroll_depth")
    dim_exprs = [f"{b.dim_expr(d)} AS d{i}" for i, d in enumerate(dimensions)]
    where = [*b.where_events(), "e.scroll_depth IS NOT NULL"]
    joins = " JOIN ses s USING (session_id)" if b.visit_columns else ""
    names = [f"d{i}" for i in range(len(dimensions))]
    inner = (f"SELECT {', '.join([*dim_exprs, 'e.visitor_id', 'max(e.scroll_depth) AS m'])} FROM ev e{joins} "
             f"WHERE {' AND '.join(where)} GROUP BY {', '.join([*names, 'e.visitor_id'])}")
    group = f" GROUP BY {', '.join(names)}" if names else ""
    body = b.wrap(f"SELECT {', '.join([*names, 'round(avg(m)) AS m_scroll_depth'])} FROM ({inner}){group}",
                  ["m_scroll_depth"])
    return f"{b.with_clause()}\n{body}", b.p
