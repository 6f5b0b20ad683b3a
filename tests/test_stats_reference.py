"""Independent Polars answers to stats queries, for the stats tests to compare the API against.

Definitions follow reports/METRICS.md in words, written again here from scratch:
a visit is a session_id; its visit values are those of its first event (entry and
exit page: first and last pageview); bounce = at most one interactive event.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
from test_stats_support import wildcard

VISIT_FIRST = {
    "visit:source": ("source", "Direct / None"), "visit:referrer": ("referrer", "Direct / None"),
    "visit:channel": ("channel", "Direct"), "visit:utm_source": ("utm_source", None),
    "visit:utm_medium": ("utm_medium", None), "visit:utm_campaign": ("utm_campaign", None),
    "visit:country": ("country", None), "visit:region": ("region", None), "visit:city": ("city", None),
    "visit:device": ("device", None), "visit:browser": ("browser", None), "visit:os": ("os", None),
    "visit:browser_version": ("browser_version", None), "visit:os_version": ("os_version", None),
}
UTM = {"visit:utm_source", "visit:utm_medium", "visit:utm_campaign"}
EVENT_COLS = {"event:page": "pathname", "event:name": "name", "event:hostname": "hostname"}
SESSION_METRICS = ("bounce_rate", "visit_duration", "views_per_visit")


def sessions(ev: pl.DataFrame) -> pl.DataFrame:
    pv = pl.col("name") == "pageview"
    s = ev.group_by("session_id").agg(
        pl.col("visitor_id").first(),
        pl.col("timestamp").min().alias("s_start"), pl.col("timestamp").max().alias("s_end"),
        pv.sum().alias("n_pageviews"),
        (pl.col("interactive") & (pl.col("name") != "engagement")).sum().alias("interactions"),
        *[pl.col(col).sort_by("timestamp").first().alias(dim) for dim, (col, _) in VISIT_FIRST.items()],
        pl.col("pathname").filter(pv).sort_by(pl.col("timestamp").filter(pv)).first().alias("visit:entry_page"),
        pl.col("pathname").filter(pv).sort_by(pl.col("timestamp").filter(pv)).last().alias("visit:exit_page"),
        pl.col("hostname").filter(pv).sort_by(pl.col("timestamp").filter(pv)).first()
        .alias("visit:entry_page_hostname"),
        pl.col("hostname").filter(pv).sort_by(pl.col("timestamp").filter(pv)).last().alias("visit:exit_page_hostname"),
    )
    return s.with_columns([pl.col(d).fill_null(default) for d, (_, default) in VISIT_FIRST.items() if default])


def _time(expr: pl.Expr, dim: str, tz: str, first_day: dt.date) -> pl.Expr:
    local = expr.dt.convert_time_zone(tz)
    if dim == "time:hour":
        return local.dt.strftime("%Y-%m-%d %H:00:00")
    if dim == "time:day":
        return local.dt.strftime("%Y-%m-%d")
    start = local.dt.date().dt.truncate("1w" if dim == "time:week" else "1mo")
    return pl.max_horizontal(start, pl.lit(first_day)).dt.strftime("%Y-%m-%d")


def goal_expr(goal: dict) -> pl.Expr:
    if "event" in goal:
        return pl.col("name") == goal["event"]
    return (pl.col("name") == "pageview") & pl.col("pathname").str.contains(wildcard(goal["page"]))


def goal_name(goal: dict) -> str:
    return goal["event"] if "event" in goal else f"Visit {goal['page']}"


def condition(tree: list, goals: list[dict]) -> pl.Expr:
    op = tree[0]
    if op in ("and", "or"):
        parts = [condition(t, goals) for t in tree[1]]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if op == "and" else (out | p)
        return out
    if op == "not":
        return ~condition(tree[1], goals)
    op, dim, values, *mods = tree
    cs = mods[0].get("case_sensitive", True) if mods else True
    if dim == "event:goal":
        chosen = [g for g in goals if goal_name(g) in values]
        out = pl.lit(False)
        for g in chosen:
            out = out | goal_expr(g)
        return ~out if op.endswith("_not") else out
    col = pl.col(dim).fill_null("")
    if not cs:
        col, values = col.str.to_lowercase(), [v.lower() for v in values]
    base = op.removesuffix("_not")
    if base == "is":
        out = col.is_in(values)
    elif base == "contains":
        out = pl.any_horizontal([col.str.contains(v, literal=True) for v in values])
    else:
        out = pl.any_horizontal([col.str.contains(v) for v in values])
    return ~out if op.endswith("_not") else out


def _num(v):
    return 0 if v is None else v


def reference(df: pl.DataFrame, site: str, start: dt.datetime, end: dt.datetime, tz: str, metrics: list[str],
              dims: list[str], filters: list, goals: list[dict] | None = None) -> dict[tuple, dict]:
    goals = goals or []
    first_day = start.astimezone(ZoneInfo(tz)).date()
    ev = df.filter((pl.col("site") == site) & (pl.col("timestamp") >= start) & (pl.col("timestamp") < end)
                   & pl.col("session_id").is_not_null())
    ses = sessions(ev)
    visit_cols = ["session_id", *VISIT_FIRST, "visit:entry_page", "visit:exit_page", "visit:entry_page_hostname",
                  "visit:exit_page_hostname"]
    evx = ev.join(ses.select(visit_cols), on="session_id", how="left").with_columns(
        [pl.col(c).alias(d) for d, c in EVENT_COLS.items()])
    cond = pl.lit(True)
    for f in filters:
        cond = cond & condition(f, goals)
    fe = evx.filter(cond)
    if "event:goal" in dims:
        parts = [fe.filter(goal_expr(g)).with_columns(pl.lit(goal_name(g)).alias("event:goal")) for g in goals]
        fe = pl.concat(parts)
    ev_dims = [pl.col(d) if not d.startswith("time") else _time(pl.col("timestamp"), d, tz, first_day).alias(d)
               for d in dims]
    out: dict[tuple, dict] = {}

    def put(frame: pl.DataFrame):
        for row in frame.to_dicts():
            key = tuple(row.pop(f"_d{i}") for i in range(len(dims)))
            if any(d in UTM and k is None for d, k in zip(dims, key, strict=True)):
                continue
            out.setdefault(key, {}).update(row)

    def grouped(frame: pl.DataFrame, exprs: list[pl.Expr], aggs: list[pl.Expr]) -> pl.DataFrame:
        exprs = [e.alias(f"_d{i}") for i, e in enumerate(exprs)]
        if not exprs:
            return frame.select(aggs)
        return frame.group_by(exprs).agg(aggs)

    ev_metrics = [m for m in metrics if m not in SESSION_METRICS and m != "percentage"]
    aggs = {
        "visitors": pl.col("visitor_id").n_unique(), "visits": pl.col("session_id").n_unique(),
        "pageviews": (pl.col("name") == "pageview").sum(), "events": (pl.col("name") != "engagement").sum(),
        "total_revenue": pl.col("revenue_amount").sum(),
        "time_on_page": pl.col("engagement_ms").filter(pl.col("name") == "engagement").sum() / 1000
        / pl.col("visitor_id").filter(pl.col("name") == "engagement").n_unique(),
    }
    wanted = [m for m in ev_metrics if m in aggs]
    if "percentage" in metrics and "visitors" not in wanted:
        wanted.append("visitors")
    if wanted:
        put(grouped(fe, ev_dims, [aggs[m].alias(m) for m in wanted]))
    if "scroll_depth" in metrics:
        sd = fe.filter(pl.col("scroll_depth").is_not_null())
        per = sd.group_by([*[e.alias(f"_d{i}") for i, e in enumerate(ev_dims)], "visitor_id"]).agg(
            pl.col("scroll_depth").max().alias("m"))
        names = [f"_d{i}" for i in range(len(dims))]
        put(per.group_by(names).agg(pl.col("m").mean().alias("scroll_depth")) if names
            else per.select(pl.col("m").mean().alias("scroll_depth")))
    s_metrics = [m for m in metrics if m in SESSION_METRICS]
    if s_metrics:
        sf = ses.filter(pl.col("session_id").is_in(fe["session_id"].unique().implode()))
        s_dims = [_time(pl.col("s_start"), d, tz, first_day) if d.startswith("time")
                  else pl.col("visit:entry_page" if d == "event:page" else d) for d in dims]
        saggs = {
            "bounce_rate": (pl.col("interactions") <= 1).mean() * 100,
            "visit_duration": ((pl.col("s_end") - pl.col("s_start")).dt.total_microseconds() / 1e6).mean(),
            "views_per_visit": pl.col("n_pageviews").sum() / pl.len(),
        }
        put(grouped(sf, s_dims, [saggs[m].alias(m) for m in s_metrics]))
    if "percentage" in metrics:
        total = fe.select(pl.col("visitor_id").n_unique()).item()
        for v in out.values():
            v["percentage"] = _num(v.get("visitors")) / total * 100 if total else None
    for v in out.values():
        for m in metrics:
            if m not in v:
                v[m] = None if m in ("total_revenue", "scroll_depth", "time_on_page", "percentage") else 0
    if not dims and not out:
        out[()] = dict.fromkeys(metrics, 0)
    return out
