"""How reports reach the data: a factory of read connections to the store."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

ConnectionFactory = Callable[[], duckdb.DuckDBPyConnection]
