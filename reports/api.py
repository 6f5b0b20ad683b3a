"""The reporting routes, as one list that app.py mounts."""

from __future__ import annotations

from reports.aggregate import aggregate
from reports.filtered import filtered
from reports.funnel import funnel_route
from reports.realtime import realtime, realtime_visitors
from reports.stats import query

ROUTES = [aggregate, query, funnel_route, realtime, realtime_visitors, filtered]
