"""How numbers and filters read on the page: 1,234 and 12.3k, 1m 05s, +12% (good or bad), "Source is Google"."""

from __future__ import annotations

from reports.dashboard.state import State

DIM_NAMES = {
    "event:page": "Page", "event:name": "Event", "event:hostname": "Hostname", "event:goal": "Goal",
    "visit:entry_page": "Entry page", "visit:exit_page": "Exit page", "visit:source": "Source",
    "visit:referrer": "Referrer", "visit:channel": "Channel", "visit:country": "Country", "visit:region": "Region",
    "visit:city": "City", "visit:device": "Screen size", "visit:browser": "Browser",
    "visit:browser_version": "Browser version", "visit:os": "Operating system", "visit:os_version": "OS version",
    "visit:utm_source": "UTM source", "visit:utm_medium": "UTM medium", "visit:utm_campaign": "UTM campaign",
    "visit:utm_content": "UTM content", "visit:utm_term": "UTM term",
}
OPS = {"is": "is", "is_not": "is not", "contains": "contains", "contains_not": "does not contain",
       "matches": "matches", "matches_not": "does not match", "matches_wildcard": "matches",
       "matches_wildcard_not": "does not match"}
CURRENCY = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹", "CHF": "CHF "}
LOWER_IS_BETTER = {"bounce_rate"}
POINTS = {"bounce_rate", "conversion_rate"}


def number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):  # revenue: {"value", "currency", "short", "long"}
        amount = value.get("value") or 0
        symbol = CURRENCY.get(value.get("currency") or "", "")
        text = f"{amount:,.0f}" if amount < 10_000 else number(int(amount))
        return f"{symbol}{text}" if symbol else f"{text} {value.get('currency') or ''}".strip()
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    n = int(value)
    if abs(n) >= 1_000_000:
        return f"{n / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    if abs(n) >= 100_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def metric(value, name: str) -> str:
    if value is None:
        return "—"
    if name == "visit_duration":
        return duration(value)
    if name in ("bounce_rate", "conversion_rate", "percentage"):
        return f"{value:g}%"
    if name == "views_per_visit":
        return f"{value:.2f}"
    return number(value)


def change(value, name: str) -> dict | None:
    """{text, direction: up|down|flat, tone: good|bad|flat, spoken} for a headline change."""
    if value is None:
        return None
    unit = " pts" if name in POINTS else "%"
    direction = "up" if value > 0 else "down" if value < 0 else "flat"
    good = value < 0 if name in LOWER_IS_BETTER else value > 0
    tone = "flat" if value == 0 else "good" if good else "bad"
    text = f"{abs(value):g}{unit}"
    spoken = {"up": f"up {text}", "down": f"down {text}", "flat": "no change"}[direction]
    return {"text": text, "direction": direction, "tone": tone, "spoken": spoken}


def filter_labels(state: State) -> list[dict]:
    out = []
    for i, f in enumerate(state.filters):
        dim = DIM_NAMES.get(f.dim) or (f"Property {f.dim[len('event:props:'):]}" if f.dim.startswith(
            "event:props:") else f.dim)
        value = f.value if f.value != "" else "(not set)"
        out.append({"dim": dim, "op": OPS.get(f.op, f.op), "value": value, "remove": state.without_filter(i)})
    return out


FILTERS = {"number": number, "duration": duration, "metric": metric, "change": change}
