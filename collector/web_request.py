"""Litestar's Request, with a body that cannot be read as JSON always a 400.

Litestar turns msgspec's DecodeError into a 400 but lets two other failures of
the same decode through as a 500: invalid UTF-8 (UnicodeDecodeError) and
nesting deeper than msgspec's recursion limit (RecursionError, a few hundred
`[`). Both are the client's fault, so both become the SerializationException
that Litestar answers with 400, for every JSON route (stats, funnel, admin).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException


class JsonSafeRequest(Request):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise SerializationException("JSON is malformed: not valid UTF-8") from None
        except RecursionError:
            raise SerializationException("JSON is malformed: nested too deeply") from None
