"""Execute a plan and shape Plausible's answer: `{"results": [...], "meta": {...}, "query": {...}}`."""

from __future__ import annotations

import csv
import datetime as dt
import io

import duckdb

from reports import rollup
from reports.query import dates, sql
from reports.query import metrics as mets
from reports.query import plan as planner
from reports.query.errors import QueryError
from reports.query.parse import Query

Rows = dict[tuple, dict[str, object]]


def first_seen(con: duckdb.DuckDBPyConnection, site: str, tz_name: str) -> dt.date | None:
    row = con.execute('SELECT timezone($tz, min("timestamp")) FROM events WHERE site = $site',
                      {"tz": tz_name, "site": site}).fetchone()
    return row[0].date() if row and row[0] else None


def _scope(query: Query, period: dates.Period) -> sql.Scope:
    return sql.Scope(site=query.site, start=period.start.astimezone(dt.UTC), end=period.end.astimezone(dt.UTC),
                     tz_name=query.tz_name, goals=query.goals, first_day=period.first_day.isoformat())


def _execute(con, text: str, params: dict) -> list[tuple]:
    try:
        return con.execute(text, params).fetchall()
    except duckdb.InvalidInputException as exc:  # an RE2 pattern Python's re accepted
        if "regex" in str(exc).lower() or "missing" in str(exc).lower():
            raise QueryError("filters", f"invalid regular expression: {exc}") from None
        raise


def _collect(rows: Rows, fetched: list[tuple], ndims: int, metrics: list[str]) -> None:
    for row in fetched:
        key = tuple(row[:ndims])
        values = rows.setdefault(key, {})
        for i, m in enumerate(metrics):
            value = row[ndims + i]
            if m in mets.REVENUE:
                currencies, currency = row[ndims + len(metrics)], row[ndims + len(metrics) + 1]
                values[m] = mets.revenue(value, currencies or 0, currency)
            else:
                values[m] = mets.tidy(m, value)


def fetch(con, query: Query, period: dates.Period, dimensions: list[str], trees: list[tuple],
          plan: planner.Plan) -> Rows:
    scope = _scope(query, period)
    rows: Rows = {}
    n = len(dimensions)
    if plan.event_metrics:
        _collect(rows, _execute(con, *sql.events_query(scope, plan.event_metrics, dimensions, trees)), n,
                 plan.event_metrics)
    if plan.visit_metrics:
        _collect(rows, _execute(con, *sql.visits_query(scope, plan.visit_metrics, dimensions, trees)), n,
                 plan.visit_metrics)
    if plan.scroll_depth:
        _collect(rows, _execute(con, *sql.scroll_query(scope, dimensions, trees)), n, ["scroll_depth"])
    return rows


def _visitors_only() -> planner.Plan:
    return planner.Plan(event_metrics=["visitors"])


def compute(con, query: Query, period: dates.Period) -> Rows:
    """All rows of the query over one period, every requested metric filled in."""
    rolled = rollup.rows(con, query, period)  # exact daily rollups when they cover the query (reports/rollup.py)
    if rolled is not None:
        return rolled
    plan = planner.make(query)
    rows = fetch(con, query, period, query.dimensions, query.filters, plan)
    if not query.dimensions and not rows:
        rows[()] = {}
    if plan.total_visitors:
        total = fetch(con, query, period, [], query.filters, _visitors_only()).get((), {}).get("visitors") or 0
        for values in rows.values():
            values["percentage"] = round(values.get("visitors", 0) / total * 100, 1) if total else None
    if plan.conversion_total or plan.group_totals:
        trees = planner.without_goals_and_props(query.filters)
        if plan.conversion_total:
            total = fetch(con, query, period, [], trees, _visitors_only()).get((), {}).get("visitors") or 0
            for values in rows.values():
                values["conversion_rate"] = round(values.get("visitors", 0) / total * 100, 1) if total else 0.0
        if plan.group_totals:
            dims_no_goal = [d for d in query.dimensions if d != "event:goal"]
            groups = fetch(con, query, period, dims_no_goal, trees, _visitors_only())
            keep = [i for i, d in enumerate(query.dimensions) if d != "event:goal"]
            for key, values in rows.items():
                total = groups.get(tuple(key[i] for i in keep), {}).get("visitors") or 0
                values["group_conversion_rate"] = round(values.get("visitors", 0) / total * 100, 1) if total else 0.0
    for values in rows.values():
        for m in query.metrics:
            values.setdefault(m, mets.tidy(m, None))
    return rows


def _sort_key(query: Query, key: tuple, values: dict):
    parts = []
    for name, direction in query.order_by:
        if name in query.dimensions:
            v = key[query.dimensions.index(name)]
        else:
            v = mets.plain(values.get(name))
        parts.append(_Ordered(v, direction == "desc"))
    parts.extend(_Ordered(v, False) for v in key)
    return parts


class _Ordered:
    """Sorts None last and can flip direction per key."""

    __slots__ = ("value", "desc")

    def __init__(self, value, desc: bool):
        self.value, self.desc = value, desc

    def __lt__(self, other: _Ordered) -> bool:
        a, b = self.value, other.value
        if a is None or b is None:
            return a is not None and b is None
        if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
            a, b = str(a), str(b)
        return a > b if self.desc else a < b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and self.value == other.value


def _time_index(query: Query, period: dates.Period) -> tuple[int | None, dict[str, int]]:
    time_dim = query.time_dimension
    if time_dim is None:
        return None, {}
    return query.dimensions.index(time_dim), {label: i for i, label in enumerate(dates.labels(time_dim, period))}


def run(con, query: Query) -> dict:
    rows = compute(con, query, query.period)
    ordered = sorted(rows.items(), key=lambda kv: _sort_key(query, kv[0], kv[1]))
    page = ordered[query.offset:query.offset + query.limit]
    results = [{"dimensions": list(key), "metrics": [values[m] for m in query.metrics]} for key, values in page]
    meta: dict = {}
    if query.comparison is not None:
        _add_comparison(con, query, page, results)
    if query.time_labels:
        meta["time_labels"] = dates.labels(query.time_dimension, query.period)
    if query.total_rows:
        meta["total_rows"] = len(ordered)
    warnings = {m: {"code": "no_single_revenue_currency",
                    "warning": "Revenue metrics are null as there are multiple currencies for the selected rows."}
                for m in query.metrics if m in mets.REVENUE and any(r["metrics"][query.metrics.index(m)] is None
                                                                    for r in results)}
    if warnings:
        meta["metric_warnings"] = warnings
    return {"results": results, "meta": dict(sorted(meta.items())), "query": query.echo}


def _add_comparison(con, query: Query, page: list, results: list[dict]) -> None:
    previous = compute(con, query, query.comparison)
    t, main_index = _time_index(query, query.period)
    if t is not None:  # time buckets pair up by position: the 3rd day with the 3rd day before
        _, cmp_index = _time_index(query, query.comparison)
        cmp_labels = dates.labels(query.time_dimension, query.comparison)
        by_position = {(cmp_index.get(k[t]), k[:t] + k[t + 1:]): (k, v) for k, v in previous.items()}
    for (key, values), result in zip(page, results, strict=True):
        if t is not None:
            pos = main_index.get(key[t])
            cmp_key, cmp_values = by_position.get((pos, key[:t] + key[t + 1:]), (None, {}))
            if cmp_key is None:
                label = cmp_labels[pos] if pos is not None and pos < len(cmp_labels) else None
                cmp_key = (*key[:t], label, *key[t + 1:])
        else:
            cmp_key, cmp_values = key, previous.get(key, {})
        old = [cmp_values.get(m, mets.tidy(m, None)) for m in query.metrics]
        result["comparison"] = {
            "dimensions": list(cmp_key),
            "metrics": old,
            "change": [mets.change(m, o, values[m]) for m, o in zip(query.metrics, old, strict=True)],
        }


def to_csv(query: Query, answer: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*query.dimensions, *query.metrics])
    for row in answer["results"]:
        writer.writerow([*row["dimensions"], *(mets.plain(v) for v in row["metrics"])])
    return out.getvalue()
