"""What each dashboard card asks the stats API, and the rows it shows.

A card is a set of tabs; each tab is one Stats API v2 body (dimension, metrics,
extra filters). Only the active tab of a card is queried. The bodies go through
`reports.stats.answer`, the function behind `POST /api/v1/query`, so a card
shows exactly what the API answers for the same body — and the CSV export of a
card is that same body with the API's own CSV writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.dashboard.state import State

TOP = 9  # rows shown per card; the CSV export has them all
NOT_CUSTOM = ["is_not", "event:name", ["pageview", "engagement"]]


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    dim: str
    metrics: tuple[str, ...] = ("visitors",)
    column: str = "Visitors"
    extra: tuple = ()  # extra filters for this tab only (API shape)


@dataclass
class Row:
    label: str
    href: str | None  # the link that filters the dashboard by this row
    values: list  # the metric values, in the tab's metric order
    bar: float = 0.0  # 0-100, relative to the first row
    country: str = ""  # ISO code: the browser writes the country's name (Intl.DisplayNames)


@dataclass
class Card:
    key: str
    title: str
    tabs: list[tuple[str, str, str, bool]]  # key, label, href, active
    tab: Tab | None = None
    headers: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    csv: str = ""
    error: str = ""
    metrics: list = field(default_factory=list)  # the metric of each value column, after drop_empty_columns
    subtabs: list = field(default_factory=list)  # (label, href, active): property keys, UTM parameters


UTM = [Tab(f"utm_{k}", f"UTM {k}", f"visit:utm_{k}") for k in ("source", "medium", "campaign", "content", "term")]
GROUPED = {"utm_": "Campaigns"}  # tabs shown as one tab with sub-tabs
CARDS: dict[str, tuple[str, list[Tab]]] = {
    "pages": ("Pages", [
        Tab("pages", "Top pages", "event:page", ("visitors", "pageviews"), "Visitors"),
        Tab("entry", "Entry pages", "visit:entry_page", ("visitors", "visits"), "Unique entrances"),
        Tab("exit", "Exit pages", "visit:exit_page", ("visitors", "visits"), "Unique exits"),
    ]),
    "sources": ("Sources", [
        Tab("sources", "Sources", "visit:source"), Tab("channels", "Channels", "visit:channel"),
        Tab("referrers", "Referrers", "visit:referrer"), *UTM,
    ]),
    "locations": ("Locations", [
        Tab("countries", "Countries", "visit:country"), Tab("regions", "Regions", "visit:region"),
        Tab("cities", "Cities", "visit:city"),
    ]),
    "devices": ("Devices", [
        Tab("browsers", "Browsers", "visit:browser"), Tab("os", "Operating systems", "visit:os"),
        Tab("devices", "Screen sizes", "visit:device"),
    ]),
    "events": ("Custom events", [
        Tab("events", "Events", "event:name", ("visitors", "events", "total_revenue"), "Uniques",
            (NOT_CUSTOM,)),
        Tab("props", "Properties", "event:props:", ("visitors", "events", "total_revenue"), "Uniques",
            (NOT_CUSTOM,)),
    ]),
}
DRILL = {"visit:browser": "visit:browser_version", "visit:os": "visit:os_version"}  # a filtered name shows versions
HEADERS = {"visitors": None, "pageviews": "Pageviews", "visits": "Visits", "events": "Total",
           "total_revenue": "Revenue", "conversion_rate": "CR"}


def active_tab(card: str, state: State, prop_keys: list[str] | None = None) -> Tab:
    tabs = CARDS[card][1]
    chosen = next((t for t in tabs if t.key == state.tabs.get(card)), tabs[0])
    drill = DRILL.get(chosen.dim)
    if drill and state.filter_value(chosen.dim) is not None:
        name = state.filter_value(chosen.dim)
        return Tab(chosen.key, chosen.label, drill, column=f"{name} versions")
    if chosen.key == "props":
        keys = prop_keys or []
        key = state.tabs.get("prop") if state.tabs.get("prop") in keys else (keys[0] if keys else "")
        return Tab("props", "Properties", f"event:props:{key}", chosen.metrics, chosen.column, chosen.extra)
    return chosen


def body(state: State, tz_name: str, tab: Tab, limit: int | None = TOP) -> dict:
    out = {**state.base(tz_name), "metrics": list(tab.metrics), "dimensions": [tab.dim],
           "filters": state.api_filters() + [list(f) for f in tab.extra]}
    if limit:
        out["pagination"] = {"limit": limit + 1 if tab.dim.startswith("event:props:") else limit}
    return out


def goal_tab(state: State) -> Tab:
    return Tab("goals", "Goals", "event:goal", ("visitors", "events", "conversion_rate", "total_revenue"), "Uniques")


def rows(card: str, state: State, tab: Tab, answer: dict) -> list[Row]:
    out = []
    top = None
    for result in answer["results"]:
        value = result["dimensions"][0]
        values = result["metrics"]
        if tab.dim.startswith("event:props:") and value == "(none)":
            continue
        top = top or max(values[0] or 0, 1)
        label, filter_value, country = _label(tab.dim, value, state)
        href = state.with_filter(tab.dim, filter_value) if filter_value is not None else None
        out.append(Row(label=label, href=href, values=values, bar=round((values[0] or 0) / top * 100, 1),
                       country=country))
    return out[:TOP]


def headers(tab: Tab) -> list[str]:
    return [HEADERS[m] or tab.column for m in tab.metrics]


def tabs_of(card: str, state: State, active: str) -> list[tuple[str, str, str, bool]]:
    out = []
    for t in CARDS[card][1]:
        group = next((p for p in GROUPED if t.key.startswith(p)), None)
        if group is None:
            out.append((t.key, t.label, state.href(tabs={card: t.key}), t.key == active))
        elif not any(key.startswith(group) for key, *_ in out):
            out.append((t.key, GROUPED[group], state.href(tabs={card: t.key}), active.startswith(group)))
    return out


def subtabs_of(card: str, state: State, active: str) -> list[tuple[str, str, bool]]:
    group = next((p for p in GROUPED if active.startswith(p)), None)
    if group is None:
        return []
    return [(t.label, state.href(tabs={card: t.key}), t.key == active) for t in CARDS[card][1]
            if t.key.startswith(group)]


def drop_empty_columns(card: Card) -> None:
    """A metric that is empty on every row (revenue on a site without any) is left out of the table."""
    if not card.rows or card.tab is None:
        return
    keep = [i for i in range(len(card.headers)) if i == 0 or any(r.values[i] is not None for r in card.rows)]
    card.headers = [card.headers[i] for i in keep]
    card.metrics = [card.tab.metrics[i] for i in keep]
    for r in card.rows:
        r.values = [r.values[i] for i in keep]


def _label(dim: str, value, state: State) -> tuple[str, str | None, str]:
    if value is None or value == "":
        # Missing values compare as "" in filters; a country filter needs a real code, so that row has no link.
        return "(not set)", (None if dim == "visit:country" else ""), ""
    text = str(value)
    if dim == "visit:country" and len(text) == 2 and text.isalpha():
        return text.upper(), text, text.upper()
    if dim in DRILL.values():
        parent = state.filter_value("visit:browser" if dim == "visit:browser_version" else "visit:os") or ""
        return f"{parent} {text}".strip(), text, ""
    return text, text, ""
