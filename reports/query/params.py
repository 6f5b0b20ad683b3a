"""Named query parameters: every user-supplied value reaches DuckDB as `$pN`, never as SQL text."""

from __future__ import annotations

import re


class Params(dict):
    def __call__(self, value) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f"${name}"


def wildcard_regex(pattern: str) -> str:
    """Plausible's wildcards: `**` matches anything, `*` anything but `/`; the whole path must match."""
    parts = [re.escape(part).replace(r"\*", "[^/]*") for part in pattern.split("**")]
    return ".*".join(parts)
