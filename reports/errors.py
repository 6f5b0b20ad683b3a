"""Every 4xx of the stats API as `{"error": "<field>: <what is wrong>"}`, Plausible's shape."""

from __future__ import annotations

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException


def bad_request(message: str, status: int = 400) -> Response:
    return Response({"error": message}, status_code=status)


def on_http_error(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict):
            key = first.get("key") or "body"
            message = str(first.get("message", exc.detail))
            return bad_request(f"{key}: {message}", exc.status_code)
    return bad_request(f"body: {exc.detail}", exc.status_code)


HANDLERS = {HTTPException: on_http_error}
