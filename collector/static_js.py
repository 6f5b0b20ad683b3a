"""GET /js/<name>.js: the tracker files built into trackers/js/dist, with a long cache, CORS and an ETag.

Files are read once at start; a request with a matching If-None-Match gets 304.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from collector.sources.http import CORS, Request

_HERE = Path(__file__).resolve().parent
DIST_CANDIDATES = (_HERE.parent / "trackers" / "js" / "dist", _HERE / "_tracker")


def load_tracker_files() -> dict[str, tuple[bytes, bytes]]:
    """path → (body, etag) for every .js in the first dist folder found."""
    for dist in DIST_CANDIDATES:
        if dist.is_dir():
            files = {}
            for path in sorted(dist.glob("*.js")):
                body = path.read_bytes()
                etag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
                files[f"/js/{path.name}"] = (body, etag)
            return files
    return {}


class TrackerFiles:
    def __init__(self, files: dict[str, tuple[bytes, bytes]]):
        self.files = files

    def routes(self) -> dict:
        return {path: self for path in self.files}

    async def __call__(self, request: Request) -> None:
        body, etag = self.files[request.path]
        headers = CORS + [
            (b"etag", etag),
            (b"cache-control", b"public, max-age=86400, stale-while-revalidate=604800"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if request.method not in ("GET", "HEAD"):
            return await request.respond(405, b'{"error": "use GET"}', headers)
        if request.header(b"if-none-match") == etag.decode():
            return await request.respond(304, b"", headers, content_type=None)
        await request.respond(200, body if request.method == "GET" else b"", headers,
                      content_type=b"application/javascript; charset=utf-8")
