"""Dashboard routes: `/` (the site list), `/<site>` (the dashboard), `/<site>/export/<card>` (CSV), `/assets/*`.

Pages are rendered with Jinja2 (autoescaping on: paths, referrers, event
names and properties are visitor-supplied text) and sent with a strict
Content-Security-Policy: scripts and styles only from this origin, no inline
code at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from reports.dashboard import cards as cardlib
from reports.dashboard import catalog, fmt
from reports.dashboard.assets import ASSETS, asset
from reports.dashboard.page import View
from reports.dashboard.state import COMPARES, GRAPH_METRICS, PERIODS, SHORTCUTS, State
from reports.query import run as runner
from reports.query.errors import QueryError
from reports.stats import answer, site_settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
           "cache-control": "no-cache"}

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
env.globals.update(asset=ASSETS.url, PERIODS=PERIODS, SHORTCUTS=SHORTCUTS, COMPARES=COMPARES,
                   GRAPH_METRICS=GRAPH_METRICS)
env.filters.update(fmt.FILTERS)


def html(template: str, status: int = 200, **context) -> Response:
    return Response(env.get_template(template).render(**context), status_code=status,
                    media_type="text/html; charset=utf-8", headers=HEADERS)


def _site(con, settings, site: str) -> str:
    name = site.strip().lower()
    if name not in catalog.configured_sites(settings) and not catalog.has_events(con, name):
        raise NotFoundException(f"no site {name!r}: it has no events and is not configured")
    return name


@get("/", sync_to_thread=True, include_in_schema=False)
def site_list(request: Request, connect: object, settings: object) -> Response:
    con = connect()
    try:
        names = sorted(set(catalog.sites_with_events(con)) | set(catalog.configured_sites(settings)))
        date = request.query_params.get("date")
        sites = []
        for name in names:
            body = {"site_id": name, "metrics": ["visitors", "pageviews"], "date_range": "30d"}
            if date:
                body["date"] = date
            try:
                values = answer(con, body, settings)[1]["results"][0]["metrics"]
            except (QueryError, IndexError):
                values = [None, None]
            sites.append({"name": name, "visitors": values[0], "pageviews": values[1]})
    finally:
        con.close()
    return html("sites.html", sites=sites)


@get("/{site:str}", sync_to_thread=True, include_in_schema=False)
def dashboard(site: str, request: Request, connect: object, settings: object) -> Response:
    con = connect()
    try:
        name = _site(con, settings, site)
    finally:
        con.close()
    state = State.from_query(name, request.query_params.dict())
    view = View(state, connect, settings)
    try:
        data = view.build()
    except QueryError as exc:
        return html("dashboard.html", status=400, state=state, error=str(exc), data=None,
                    realtime_url=f"/api/v1/realtime?site={name}")
    csv = {k: f"/{name}/export/{k}{state.href()}" for k in [*cardlib.CARDS, "goals"]}
    return html("dashboard.html", state=state, data=data, error="", csv=csv,
                realtime_url=f"/api/v1/realtime?site={name}", labels=fmt.filter_labels(state))


@get("/{site:str}/export/{card:str}", sync_to_thread=True, include_in_schema=False)
def export(site: str, card: str, request: Request, connect: object, settings: object) -> Response:
    con = connect()
    try:
        name = _site(con, settings, site)
        state = State.from_query(name, request.query_params.dict())
        tz = site_settings(settings, name).get("timezone") or "UTC"
        if card == "goals":
            tab = cardlib.goal_tab(state)
        elif card in cardlib.CARDS:
            prop = state.tabs.get("prop")
            tab = cardlib.active_tab(card, state, [prop] if prop else [])
        else:
            raise NotFoundException(f"no card {card!r}")
        try:
            parsed, result = answer(con, cardlib.body(state, tz, tab, limit=None), settings)
        except QueryError as exc:
            return Response({"error": str(exc)}, status_code=400)
    finally:
        con.close()
    filename = re.sub(r"[^a-z0-9._-]+", "_", f"{name}-{card}-{tab.key}.csv")
    return Response(runner.to_csv(parsed, result), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


ROUTES = [site_list, dashboard, export, asset]
