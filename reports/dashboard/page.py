"""Assemble one dashboard view: run every card's stats query (in parallel, one cursor each) and shape them.

Everything numeric goes through the stats API's own functions: `answer` (POST
/api/v1/query), `funnel` (POST /api/v1/funnel), `current_visitors` (GET
/api/v1/realtime) and the `filtered` handler (GET /api/v1/filtered). A card
whose query fails shows the API's message instead of taking the page down.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reports.dashboard import cards as cardlib
from reports.dashboard import catalog
from reports.dashboard.chart import draw
from reports.dashboard.state import GRAPH_METRICS, State
from reports.filtered import filtered
from reports.funnel import funnel
from reports.query import parse as parser
from reports.query import run as runner
from reports.query.errors import QueryError
from reports.realtime import current_visitors
from reports.stats import answer, site_settings

HEADLINE = [("visitors", "Unique visitors"), ("visits", "Total visits"), ("pageviews", "Total pageviews"),
            ("views_per_visit", "Views per visit"), ("bounce_rate", "Bounce rate"),
            ("visit_duration", "Visit duration")]
POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="strana-dashboard")


class View:
    def __init__(self, state: State, connect, settings):
        self.state, self.connect, self.settings = state, connect, settings
        self.per_site = site_settings(settings, state.site)
        self.tz = self.per_site.get("timezone") or "UTC"

    def ask(self, body: dict) -> dict:
        con = self.connect()
        try:
            return answer(con, body, self.settings)[1]
        finally:
            con.close()

    def parsed(self, body: dict) -> parser.Query:
        con = self.connect()
        try:
            return parser.parse(body, self.per_site, lambda s: runner.first_seen(con, s, self.tz))
        finally:
            con.close()

    # -- the parts of the page ---------------------------------------------
    def headline(self) -> dict:
        metrics = [m for m, _ in HEADLINE]
        if any(f.dim == "event:page" for f in self.state.filters):
            metrics.remove("views_per_visit")  # the API refuses it with a page filter (as Plausible)
        body = {**self.state.base(self.tz), "metrics": metrics, "filters": self.state.api_filters()}
        if self.state.comparison():
            body["include"] = {"comparisons": self.state.comparison()}
        result = self.ask(body)
        row = result["results"][0] if result["results"] else {"metrics": [0] * len(metrics)}
        cmp = row.get("comparison")
        out = []
        for m, label in HEADLINE:
            if m not in metrics:
                out.append({"metric": m, "label": label, "value": None, "change": None, "previous": None})
                continue
            i = metrics.index(m)
            out.append({"metric": m, "label": label, "value": row["metrics"][i],
                        "change": cmp["change"][i] if cmp else None, "previous": cmp["metrics"][i] if cmp else None})
        return {"numbers": out, "body": body, "query": result["query"]}

    def graph(self, comparison_range: list[str] | None) -> dict:
        metric = self.state.metric
        body = {**self.state.base(self.tz), "metrics": list(GRAPH_METRICS), "dimensions": ["time"],
                "filters": self.state.api_filters(), "include": {"time_labels": True}}
        result = self.ask(body)
        interval = result["query"]["dimensions"][0]
        labels = result["meta"].get("time_labels", [])
        i = list(GRAPH_METRICS).index(metric)
        by_label = {r["dimensions"][0]: r["metrics"][i] for r in result["results"]}
        values = [by_label.get(label, 0) for label in labels]
        compare = None
        if comparison_range:
            cbody = {**body, "date_range": comparison_range, "dimensions": [interval]}
            cresult = self.ask(cbody)
            cby = {r["dimensions"][0]: r["metrics"][i] for r in cresult["results"]}
            compare = [cby.get(label, 0) for label in cresult["meta"].get("time_labels", [])]
        return {"chart": draw(labels, values, compare, interval, GRAPH_METRICS[metric]), "interval": interval}

    def card(self, key: str, start=None, end=None) -> cardlib.Card:
        title, _ = cardlib.CARDS[key]
        keys = None
        if key == "events" and self.state.tabs.get("events") == "props":
            con = self.connect()
            try:
                keys = catalog.prop_keys(con, self.state.site, start, end)
            finally:
                con.close()
        tab = cardlib.active_tab(key, self.state, keys)
        card = cardlib.Card(key=key, title=title, tabs=cardlib.tabs_of(key, self.state, tab.key), tab=tab,
                            headers=cardlib.headers(tab), subtabs=cardlib.subtabs_of(key, self.state, tab.key))
        if keys is not None:
            card.subtabs = [(k, self.state.href(tabs={"prop": k}), tab.dim == f"event:props:{k}") for k in keys]
            if not keys:
                card.error = "No custom properties in this period."
                return card
        return self._fill(card, key, tab)

    def goals(self) -> cardlib.Card | None:
        if not self.per_site.get("goals"):
            return None
        tab = cardlib.goal_tab(self.state)
        card = cardlib.Card(key="goals", title="Goal conversions", tabs=[], tab=tab, headers=cardlib.headers(tab))
        return self._fill(card, "goals", tab)

    def _fill(self, card: cardlib.Card, key: str, tab: cardlib.Tab) -> cardlib.Card:
        try:
            card.rows = cardlib.rows(key, self.state, tab, self.ask(cardlib.body(self.state, self.tz, tab)))
            cardlib.drop_empty_columns(card)
        except QueryError as exc:
            card.error = str(exc)
        return card

    def funnels(self) -> dict | None:
        configured = self.per_site.get("funnels")
        if isinstance(configured, dict):
            configured = [{"name": k, "steps": v} for k, v in configured.items()]
        if not configured:
            return None
        names = [str(f.get("name", f"Funnel {i + 1}")) for i, f in enumerate(configured)]
        chosen = self.state.tabs.get("funnel") if self.state.tabs.get("funnel") in names else names[0]
        spec = configured[names.index(chosen)]
        visit_filters = [f.api() for f in self.state.filters if f.dim.startswith("visit:")]
        out = {"names": [(n, self.state.href(tabs={"funnel": n}), n == chosen) for n in names], "name": chosen,
               "note": "" if len(visit_filters) == len(self.state.filters) else
               "Funnels apply visit filters only (source, location, device, ...); other filters are left out."}
        con = self.connect()
        try:
            out["result"] = funnel(con, {**self.state.base(self.tz), "steps": spec.get("steps", []),
                                         "filters": visit_filters}, self.settings)
        except QueryError as exc:
            out["error"] = str(exc)
        finally:
            con.close()
        return out

    def realtime(self) -> int:
        con = self.connect()
        try:
            return current_visitors(con, self.state.site)
        finally:
            con.close()

    def filtered(self) -> dict:
        value = self.state.date_range(self.tz)
        date_range = ",".join(value) if isinstance(value, list) else value
        result = filtered.fn(connect=self.connect, site=self.state.site, date_range=date_range,
                             date=self.state.date)
        if not hasattr(result, "results"):
            return {"total": 0, "results": [], "error": "unavailable"}
        return {"total": result.total, "results": [(r.reason, r.dropped, r.description) for r in result.results]}

    # -- the whole page ------------------------------------------------------
    def build(self) -> dict:
        base = {**self.state.base(self.tz), "metrics": ["visitors"], "filters": self.state.api_filters()}
        if self.state.comparison():
            base["include"] = {"comparisons": self.state.comparison()}
        query = self.parsed(base)  # validates period and filters once, before anything runs
        cmp_range = None
        if query.comparison is not None:
            cmp_range = [query.comparison.first_day.isoformat(), query.comparison.last_day.isoformat()]
        jobs = {
            "headline": lambda: self.headline(),
            "graph": lambda: self.graph(cmp_range),
            **{k: (lambda k=k: self.card(k, query.period.start, query.period.end)) for k in cardlib.CARDS},
            "goals": self.goals, "funnels": self.funnels, "realtime": self.realtime, "filtered": self.filtered,
        }
        futures = {name: POOL.submit(job) for name, job in jobs.items()}
        out = {name: f.result() for name, f in futures.items()}
        out["period"] = query.period
        out["comparison"] = query.comparison
        return out
