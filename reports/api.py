"""The reporting routes, as one list that app.py mounts."""

from __future__ import annotations

from reports.aggregate import aggregate

ROUTES = [aggregate]
