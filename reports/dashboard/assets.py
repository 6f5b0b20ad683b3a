"""The dashboard's CSS and JS, served under content-hashed names with year-long cache headers.

`reports/static/dashboard.css` is served as `/assets/dashboard.<hash>.css`;
a new build changes the hash, so browsers may cache every name forever.
Files are read once at import: there are two of them, a few kB each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from litestar import Response, get
from litestar.exceptions import NotFoundException

STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".svg": "image/svg+xml"}
CACHE = "public, max-age=31536000, immutable"


class Assets:
    def __init__(self, folder: Path):
        self.urls: dict[str, str] = {}  # "dashboard.css" -> "/assets/dashboard.1a2b3c4d5e.css"
        self.files: dict[str, tuple[bytes, str]] = {}  # hashed name -> (body, content type)
        for path in sorted(folder.iterdir()):
            if path.suffix not in TYPES:
                continue
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:10]
            hashed = f"{path.stem}.{digest}{path.suffix}"
            self.urls[path.name] = f"/assets/{hashed}"
            self.files[hashed] = (data, TYPES[path.suffix])

    def url(self, name: str) -> str:
        return self.urls[name]


ASSETS = Assets(STATIC)


@get("/assets/{name:str}", sync_to_thread=False, include_in_schema=False)
def asset(name: str) -> Response:
    found = ASSETS.files.get(name)
    if found is None:
        raise NotFoundException(f"no asset {name!r}")
    body, media_type = found
    return Response(body, media_type=media_type, headers={"cache-control": CACHE,
                                                          "x-content-type-options": "nosniff"})
