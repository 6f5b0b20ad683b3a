"""Do Not Track and Global Privacy Control, by the site's policy.

`ignore`: count the hit as usual. `anonymous` (default): count it, but
`put_visitor_id` gives it no visitor id and so no session. `drop`: do not
count it at all (reason `dnt`).
"""

from __future__ import annotations

from collector.events import Hit


class DropDnt:
    def __init__(self, policy: str = "anonymous"):
        self.policy = policy

    def __call__(self, hit: Hit) -> str | None:
        if hit.privacy_signal and self.policy == "drop":
            return "dnt"
        return None
