"""Request and response types of the stats API, so /schema (OpenAPI) describes them field by field."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Comparisons(msgspec.Struct, forbid_unknown_fields=True):
    mode: Literal["previous_period", "year_over_year", "custom"]
    date_range: list[str] | None = None
    match_day_of_week: bool = False


class Include(msgspec.Struct, forbid_unknown_fields=True):
    time_labels: bool = False
    total_rows: bool = False
    imports: bool = False
    comparisons: Comparisons | None = None


class Pagination(msgspec.Struct, forbid_unknown_fields=True):
    limit: int = 10_000
    offset: int = 0


class GoalSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One goal: an event name, or a page path with `*` (one segment) and `**` (anything) wildcards."""

    event: str | None = None
    page: str | None = None
    display_name: str | None = None


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A Stats API v2 query. `filters` entries look like `["is", "visit:country", ["DE"]]`."""

    site_id: str
    metrics: list[str]
    date_range: str | list[str]
    dimensions: list[str] = []
    filters: list[Any] = []
    order_by: list[list[str]] | None = None
    include: Include | None = None
    pagination: Pagination | None = None
    date: str | None = None
    goals: list[GoalSpec] | None = None
    format: Literal["json", "csv"] = "json"


class ComparisonRow(msgspec.Struct):
    dimensions: list[Any]
    metrics: list[Any]
    change: list[Any]


class ResultRow(msgspec.Struct, omit_defaults=True):
    dimensions: list[Any]
    metrics: list[Any]
    comparison: ComparisonRow | None = None


class QueryResponse(msgspec.Struct):
    results: list[ResultRow]
    meta: dict[str, Any]
    query: dict[str, Any]


class ErrorResponse(msgspec.Struct):
    error: str


class FunnelRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Ordered steps within one visit; each step is a goal spec or the name of a configured goal."""

    site_id: str
    date_range: str | list[str]
    steps: list[GoalSpec | str]
    date: str | None = None
    filters: list[Any] = []


class FunnelStep(msgspec.Struct):
    label: str
    visitors: int
    conversion_rate: float
    conversion_rate_step: float
    dropoff: int
    dropoff_percentage: float


class FunnelResponse(msgspec.Struct):
    steps: list[FunnelStep]
    all_visitors: int
    entering_visitors: int
    never_entering_visitors: int
    conversion_rate: float
    date_range: list[str]


class Count(msgspec.Struct):
    name: str
    visitors: int


class RealtimeResponse(msgspec.Struct):
    visitors: int
    pages: list[Count]
    sources: list[Count]


class DropCount(msgspec.Struct):
    reason: str
    dropped: int
    description: str


class FilteredResponse(msgspec.Struct):
    results: list[DropCount]
    total: int
    date_range: list[str]
