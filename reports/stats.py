"""POST /api/v1/query: Plausible's Stats API v2 over the local store (JSON, or CSV on request)."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, post

from reports.errors import HANDLERS, bad_request
from reports.query import parse as parser
from reports.query import run as runner
from reports.query.errors import QueryError
from reports.schemas import QueryRequest, QueryResponse


def site_settings(settings, site: str) -> dict:
    sites = settings.values.get("sites", {}) if settings is not None else {}
    return sites.get(site, {}) if isinstance(sites, dict) else {}


def known_sites(settings) -> list[str]:
    try:
        return [s.lower() for s in settings.get("ingest", "sites")]
    except (AttributeError, KeyError):
        return []


def answer(con, body: dict, settings) -> tuple[parser.Query, dict]:
    site = str(body.get("site_id") or "").strip().lower()
    per_site = site_settings(settings, site)
    query = parser.parse(body, per_site, lambda s: runner.first_seen(con, s, per_site.get("timezone") or "UTC"),
                         known_sites(settings))
    return query, runner.run(con, query)


@post("/api/v1/query", sync_to_thread=True, exception_handlers=HANDLERS, status_code=200,
      summary="Stats API v2 query", description="Plausible-compatible: metrics × dimensions × filters over a period. "
      "Send `Accept: text/csv` or `\"format\": \"csv\"` for CSV.")
def query(request: Request, data: QueryRequest, connect: object, settings: object) -> QueryResponse:
    body = msgspec.to_builtins(data)
    csv_wanted = body.pop("format", "json") == "csv" or "text/csv" in request.headers.get("accept", "")
    con = connect()
    try:
        parsed, result = answer(con, body, settings)
    except QueryError as exc:
        return bad_request(str(exc))
    finally:
        con.close()
    if csv_wanted:
        return Response(runner.to_csv(parsed, result), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{parsed.site}.csv"'})
    return Response(result)
