"""Which query answers which metric.

Plausible splits a query between its events and sessions tables; so do we.
Counting metrics come from the event rows, visit metrics (bounce rate, visit
duration, views per visit) from the visit rows. When a query has no event
dimension, no time dimension and only visit filters, the counting metrics come
from the visit rows too, so a breakdown by source or country is one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.query import dimensions as dims
from reports.query import filters as flt
from reports.query import metrics as mets
from reports.query.parse import Query

NEEDS_VISITORS = ("percentage", "conversion_rate", "group_conversion_rate")


@dataclass
class Plan:
    event_metrics: list[str] = field(default_factory=list)
    visit_metrics: list[str] = field(default_factory=list)
    scroll_depth: bool = False
    total_visitors: bool = False  # percentage: visitors of the same query without dimensions
    conversion_total: bool = False  # conversion_rate: ... and without goal and property filters
    group_totals: bool = False  # group_conversion_rate: per group, without goal and property filters


def visit_only(query: Query) -> bool:
    """True when the visit rows alone can answer the counting metrics."""
    if any(dims.is_event(d) or dims.is_time(d) for d in query.dimensions):
        return False
    return all(all(dims.is_visit(d) for d in flt.dimensions_in(t)) for t in query.filters)


def make(query: Query) -> Plan:
    plan = Plan()
    wanted = [m for m in query.metrics if m in mets.SQL]
    if any(m in NEEDS_VISITORS for m in query.metrics) and "visitors" not in wanted:
        wanted.append("visitors")
    on_visits = visit_only(query)
    for m in wanted:
        if mets.SQL[m][0] is None or (on_visits and m in mets.COUNTS):
            plan.visit_metrics.append(m)
        else:
            plan.event_metrics.append(m)
    plan.scroll_depth = "scroll_depth" in query.metrics
    plan.total_visitors = "percentage" in query.metrics
    plan.conversion_total = "conversion_rate" in query.metrics
    plan.group_totals = "group_conversion_rate" in query.metrics
    return plan


def without_goals_and_props(trees: list[tuple]) -> list[tuple]:
    return [t for t in trees if not flt.is_goal_or_prop(t)]
