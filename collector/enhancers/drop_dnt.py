"""Do Not Track and Global Privacy Control, by the site's policy.

`ignore`: count the hit as usual. `anonymous` (default): count it, but
`put_visitor_id` gives it no visitor id and so no session. `drop`: do not
count it at all (reason `dnt`). A site may set its own policy.
"""

from __future__ import annotations

from collector.events import Hit


def policy_for(hit: Hit, default: str, sites) -> str:
    """The site's own `dnt_policy` when it has one (site registry), else the server-wide one."""
    if sites is not None:
        view = sites.get(hit.site)
        if view is not None and view.dnt_policy:
            return view.dnt_policy
    return default


class DropDnt:
    def __init__(self, policy: str = "anonymous", sites=None):
        self.policy = policy
        self.sites = sites

    def __call__(self, hit: Hit) -> str | None:
        if hit.privacy_signal and policy_for(hit, self.policy, self.sites) == "drop":
            return "dnt"
        return None

    def many(self, hits: list[Hit]) -> list[tuple[int, str]]:
        """The batch form: only hits that sent the signal are looked at, their site's policy once per site."""
        policies: dict[str, str] = {}
        drops = []
        for index, hit in enumerate(hits):
            if hit.privacy_signal:
                policy = policies.get(hit.site)
                if policy is None:
                    policy = policies[hit.site] = policy_for(hit, self.policy, self.sites)
                if policy == "drop":
                    drops.append((index, "dnt"))
        return drops
