"""The one error type of the query layer: a 400 whose message starts with the field at fault."""

from __future__ import annotations


class QueryError(ValueError):
    """`QueryError("metrics", "unknown metric 'foo'")` → `metrics: unknown metric 'foo'`."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
