"""The built-in dashboard: server-rendered pages over the stats API's query layer.

Every number on the page comes from the same functions the JSON API runs
(`reports.stats.answer`, `reports.funnel.funnel`, `reports.realtime`,
`reports.filtered`), called in process; the realtime card then refreshes from
`GET /api/v1/realtime` in the browser. The page's whole state (period,
comparison, filters, tabs) lives in its query string, parsed by `state.py`.
"""

from reports.dashboard.routes import ROUTES

__all__ = ["ROUTES"]
