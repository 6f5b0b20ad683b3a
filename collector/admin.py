"""The admin API: what an operator does on a running server, which holds the DuckDB file.

While `strana serve` runs, no other process may open the store, so the
`strana quarantine` commands have these twins:

- `GET /api/v1/quarantine?site=&reason=&id=&all=1&full=1`: the items (with
  `full`, their payloads) and the counts per site, day and reason: an export;
- `POST /api/v1/quarantine/replay` with `{"site", "reason", "id"}` (all
  optional): replay the waiting items, as `strana quarantine replay` does.

Both need `Authorization: Bearer <[admin] token>`; with no token set the
admin API answers 404. (Accounts and roles come later; this is the stopgap.)
"""

from __future__ import annotations

import hmac

from litestar import Request, get, post
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException

from collector import quarantine


def _authorize(request: Request, settings) -> None:
    token = settings.admin.token
    if not token:
        raise NotFoundException("the admin API is off: set [admin] token (or STRANA_ADMIN__TOKEN)")
    scheme, _, sent = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise NotAuthorizedException("send Authorization: Bearer <[admin] token>")


@get("/api/v1/quarantine", sync_to_thread=True)
def quarantine_list(request: Request, settings: object, connect: object, site: str | None = None,
                    reason: str | None = None, id: str | None = None, all: bool = False,
                    full: bool = False) -> dict:
    _authorize(request, settings)
    con = connect()
    try:
        items = quarantine.select(con, site=site, reason=reason, item_id=id, pending=not all)
        counts = [{"site": s, "day": str(d), "reason": r, "items": n, "waiting": w}
                  for s, d, r, n, w in quarantine.counts(con)]
    except ValueError as exc:
        raise ValidationException(f"id: {exc}") from None
    finally:
        con.close()
    return {"items": [i.full() if full else i.summary() for i in items], "counts": counts}


@post("/api/v1/quarantine/replay", status_code=200)
async def quarantine_replay(request: Request, settings: object, runtime: object) -> dict:
    _authorize(request, settings)
    body = await request.body()
    args = (await request.json()) if body.strip() else {}
    if not isinstance(args, dict):
        raise ValidationException('send {"site": ..., "reason": ..., "id": ...} (all optional)')
    con = runtime.connect()
    try:
        items = quarantine.select(con, site=args.get("site"), reason=args.get("reason"), item_id=args.get("id"))
    except ValueError as exc:
        raise ValidationException(f"id: {exc}") from None
    finally:
        con.close()
    results = [await runtime.replayer.one(item) for item in items]
    return {"results": results, "stored": sum(r["result"] == "stored" for r in results),
            "still_failing": sum(r["result"] == "still failing" for r in results)}


ROUTES = [quarantine_list, quarantine_replay]
