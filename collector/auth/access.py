"""Who is asking, and what they may do: the one table of roles and scopes.

| principal | may read a site's stats | may change its settings, keys, links | may add/remove sites, people |
| --- | --- | --- | --- |
| owner (user) | every site | every site | yes |
| admin on S | S | S | no |
| viewer on S | S | no | no |
| `read` key for S | S (stats API only) | no | no |
| `write` key for S | no (batch API only) | no | no |
| shared link for S | S (read-only) | no | no |
| local (auth not required) | every site | every site | yes |
"""

from __future__ import annotations

from dataclasses import dataclass

READ_ROLES = ("owner", "admin", "viewer")
ADMIN_ROLES = ("owner", "admin")


@dataclass
class Principal:
    kind: str  # anonymous | local | user | key | link
    user: object = None  # directory.UserInfo
    key: object = None  # directory.KeyInfo
    link: object = None  # directory.LinkInfo
    via_cookie: bool = False  # authenticated by a cookie: unsafe requests need the CSRF token

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def is_owner(self) -> bool:
        return self.kind == "local" or (self.kind == "user" and self.user.is_owner)

    def role(self, site: str) -> str | None:
        if self.is_owner:
            return "owner"
        if self.kind == "user":
            return self.user.roles.get(site) or self.user.roles.get("*")
        if self.kind == "key":
            return "viewer" if self.key.scope == "read" and self.key.site == site else None
        if self.kind == "link":
            return "viewer" if self.link.site == site else None
        return None

    def can_read(self, site: str) -> bool:
        return self.role(site) in READ_ROLES

    def can_admin(self, site: str) -> bool:
        return self.kind in ("user", "local") and self.role(site) in ADMIN_ROLES

    def readable(self, domains) -> list[str]:
        return [d for d in domains if self.can_read(d)]

    def describe(self) -> dict:
        out: dict = {"kind": self.kind, "owner": self.is_owner}
        if self.kind == "user":
            out.update(id=self.user.id, email=self.user.email, roles=dict(self.user.roles),
                       totp=self.user.totp_secret is not None)
        elif self.kind == "key":
            out.update(site=self.key.site, scope=self.key.scope)
        elif self.kind == "link":
            out.update(site=self.link.site, embed=self.link.embed)
        return out
