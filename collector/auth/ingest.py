"""The batch API's key check: sites with `require_key = true` take batches only with their `write` key.

Plausible's Events API is unauthenticated, and so are /api/event and /p.gif
here (a browser cannot keep a secret). The batch API is for servers, which
can: a site may require `Authorization: Bearer <write key for the site>`.
A key that is sent but invalid, expired or revoked is always refused.
"""

from __future__ import annotations

from collector.sources.http import BadRequest


class BatchKeys:
    def __init__(self, directory, sites):
        self.directory = directory
        self.sites = sites

    def __call__(self, request, hits) -> None:
        header = request.header(b"authorization")
        key = None
        if header is not None:
            if header[:7].lower() != "bearer " or (key := self.directory.key(header[7:].strip())) is None:
                raise BadRequest(401, "the API key is invalid, expired or revoked", "authorization",
                                 reason="bad_key")
        for site in {hit.site for hit in hits}:
            view = self.sites.get(site)
            if view is None or not view.require_key:
                continue
            if key is None:
                raise BadRequest(401, f"site {site!r} requires a write API key: send Authorization: Bearer <key>",
                                 "authorization", reason="bad_key")
            if key.scope != "write" or key.site != site:
                raise BadRequest(403, f"this key cannot send events for {site!r} (it is a {key.scope} key for "
                                      f"{key.site!r})", "authorization", reason="bad_key")
