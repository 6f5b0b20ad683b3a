"""Typed settings: defaults, then `strana.toml`, then STRANA_SECTION__KEY variables.

Every setting is declared once in `SETTINGS` with its default and a line of
help; the README's configuration table is checked against it by a test. With no
file and no variables the defaults run `strana serve` as-is.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (section, key, default, help)
SETTINGS: list[tuple[str, str, Any, str]] = [
    ("server", "host", "127.0.0.1", "address to listen on"),
    ("server", "port", 8000, "port to listen on"),
    ("server", "data_dir", "./data", "folder for the DuckDB file and other state"),
    ("server", "role", "all", "all (embedded: ingest + store + dashboard) or ingest (publish to the bus only)"),
    ("server", "trusted_proxies", [], "addresses/CIDRs whose X-Forwarded-For / Forwarded headers are believed"),
    ("server", "log_level", "info", "debug, info, warning, error"),
    ("server", "read_timeout_seconds", 10, "a client must send its request headers, and an ingest body, within "
     "this many seconds; a slower one (slow-loris) is cut off"),
    ("server", "background_nice", 19, "how many nice steps below ingest the work no request waits for runs "
     "(dashboard reads, DuckDB's threads, the spool loader, jobs), 0-19; 0: the same priority"),
    ("ingest", "max_body_bytes", 65536, "largest body accepted by /api/event"),
    ("ingest", "max_batch_bytes", 1048576, "largest (decompressed) body accepted by /api/v1/batch"),
    ("ingest", "max_webhook_bytes", 1048576, "largest body accepted by /hooks/<name>"),
    ("ingest", "max_batch_events", 500, "most events in one /api/v1/batch request"),
    ("ingest", "max_past_days", 7, "oldest client timestamp accepted, in days before now"),
    ("ingest", "max_future_seconds", 300, "how far in the future a client timestamp may be"),
    ("ingest", "max_props", 30, "most custom properties on one event"),
    ("ingest", "max_prop_key_length", 300, "longest property name"),
    ("ingest", "max_prop_value_length", 2000, "longest property value"),
    ("ingest", "max_url_length", 2048, "longest page or referrer URL"),
    ("ingest", "max_name_length", 120, "longest event name"),
    ("ingest", "sites", [], "if set, only these site domains are accepted; others get 400"),
    ("ingest", "query_allow", [], "query parameters kept in stored URLs besides campaign keys (e.g. ['q', 'page'])"),
    ("ingest", "commit_rows", 2000, "group commit: flush when this many events are waiting"),
    ("ingest", "commit_interval_ms", 0, "group commit: extra wait for a group to grow (0: commit as soon as the last "
     "commit is done; groups grow by themselves under load)"),
    ("ingest", "max_pending_events", 50000, "events waiting for a commit before ingest answers 503"),
    ("ingest", "durability", "spool", "what a 2xx waits for: spool (fsynced local log, loaded into DuckDB in the "
     "background, replayed after a crash; once in use it keeps one 64 MB pre-zeroed segment ready, `spool/spare`) "
     "or commit (the DuckDB commit itself)"),
    ("ingest", "open_mode", False, "accept hits for any site (an unknown one is created on its first hit) even once "
     "sites are configured; while none is configured Strana is in open mode anyway"),
    ("ingest", "rate_limit_per_ip", 0.0, "events per second per client address, 0: no limit (429 + Retry-After)"),
    ("ingest", "rate_limit_per_site", 0.0, "events per second per site, 0: no limit (429 + Retry-After)"),
    ("ingest", "rate_limit_burst", 2.0, "rate-limit bucket size, in seconds' worth of the rate"),
    ("auth", "required", "auto", "who may read stats: auto (a key or login once an owner exists, or when listening "
     "on a non-loopback address, or for proxied requests), true, or false (anyone: local use only)"),
    ("auth", "public_url", "", "the dashboard's public base URL, for the setup link (default: http://host:port)"),
    ("auth", "session_hours", 336, "how long a login lasts"),
    ("auth", "login_attempts", 10, "failed logins allowed per 15 minutes, per address and per account"),
    ("privacy", "dnt_policy", "anonymous", "DNT / Sec-GPC: ignore, anonymous (counted, no visitor id) or drop"),
    ("geoip", "database", "", "path to a MaxMind-format City .mmdb; empty: the bundled GeoLite2 file if installed"),
    ("admin", "token", "", "bearer token for the admin API (/api/v1/quarantine); empty: the admin API is off"),
    ("bus", "kind", "memory", "memory (embedded) | kafka | nats"),
    ("bus", "brokers", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated"),
    ("bus", "servers", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated"),
    ("bus", "topic", "strana-events", "Kafka topic / JetStream stream (subjects `<topic>.<partition>`) for events"),
    ("bus", "partitions", 8, "partitions of the events topic / subject buckets of the stream (fixed once created)"),
    ("bus", "group", "strana-workers", "Kafka consumer group / prefix of the JetStream durable consumers"),
    ("bus", "salts", "strana-salts", "where the daily salts live: a compacted Kafka topic / a NATS KV bucket"),
    ("bus", "kafka_options", {}, "extra librdkafka settings for producer and consumer (TLS/SASL: security.protocol, "
     "ssl.ca.location, sasl.mechanism, sasl.username, sasl.password, ...)"),
    ("bus", "nats_credentials", "", "NATS .creds file (JWT + nkey)"),
    ("bus", "nats_token", "", "NATS auth token"),
    ("bus", "max_in_flight", 20000, "events sent to the broker and not yet acknowledged before ingest answers 503"),
    ("bus", "publish_timeout_ms", 5000, "longest wait for the broker's ack; then the request gets 503"),
    ("bus", "connect_timeout_ms", 5000, "how long start-up waits for the broker before giving up"),
    ("bus", "session_timeout_ms", 10000, "Kafka consumer group session timeout"),
    ("worker", "partitions", "", "partitions this worker owns, e.g. `0-3` or `0,2` (one DuckDB file per owner); "
     "empty: all (NATS) or as the Kafka consumer group assigns them"),
    ("sink", "kind", "duckdb", "duckdb | parquet"),
    ("sink", "path", "", "parquet: s3://bucket/prefix or a folder; empty: <data_dir>/lake"),
    ("sink", "endpoint", "", "parquet on S3: host:port or URL of an S3-compatible server; empty: AWS"),
    ("sink", "region", "us-east-1", "parquet on S3: the bucket's region"),
    ("sink", "access_key", "", "parquet on S3: access key id; empty: AWS_ACCESS_KEY_ID / instance credentials"),
    ("sink", "secret_key", "", "parquet on S3: secret access key; empty: AWS_SECRET_ACCESS_KEY"),
    ("sink", "scheme", "https", "parquet on S3: http or https, when endpoint has no scheme"),
    ("sink", "path_style", True, "parquet on S3: bucket in the path (true) or in the host name (false)"),
    ("sink", "retention_days", 0, "delete events older than this many days (0: keep forever); "
     "per site: [sites.\"example.com\"] retention_days"),
    ("sink", "compact_grace_seconds", 600, "parquet: compaction deletes merged files this long after merging "
     "(longer than any query runs)"),
    ("sink", "memory_limit", "256MB", "duckdb: the most memory DuckDB may keep (buffer cache and queries; larger "
     "operations spill to disk), e.g. 512MB, 4GB; empty: DuckDB's default, 80% of RAM"),
    ("sink", "threads", 0, "duckdb: threads a query (or a load) may use; 0: DuckDB's default, one per core. Fewer "
     "leaves ingest more of the CPU while the dashboard reads, but big counts may then run out of memory_limit"),
    ("sink", "today_rollups_seconds", 10, "duckdb: how often the rollups of today so far are moved on; a card for "
     "today then reads the events stored since, not the whole day (0: off, today read from raw events)"),
    ("sink", "list_cache_seconds", 5.0, "parquet: how long reports reuse a listing of the lake (this process's "
     "own writes show at once)"),
]


@dataclass(frozen=True)
class Settings:
    """Read-only view: `settings.server.port`, `settings.get('ingest', 'sites')`."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "defaults"

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def __getattr__(self, section: str) -> Any:
        try:
            return _Section(self.values[section])
        except KeyError:
            raise AttributeError(section) from None

    @property
    def data_dir(self) -> Path:
        return Path(self.values["server"]["data_dir"])


class _Section:
    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]):
        self._values = values

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None


class SettingsError(ValueError):
    """A setting has a value of the wrong kind; the message names it."""


def _coerce(section: str, key: str, default: Any, value: Any, origin: str) -> Any:
    where = f"{origin}: [{section}] {key}"
    if isinstance(default, bool):
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
        if isinstance(value, bool):
            return value
        raise SettingsError(f"{where} must be true or false, got {value!r}")
    if isinstance(default, int):
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where} must be a whole number, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where} must be a number, got {value!r}") from None
    if isinstance(default, list):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise SettingsError(f"{where} is not a JSON list: {value!r}") from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            raise SettingsError(f"{where} must be a list, got {value!r}")
        return value
    if isinstance(default, dict) and isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise SettingsError(f"{where} is not a JSON object: {value!r}") from None
    if isinstance(default, dict) and not isinstance(value, dict):
        raise SettingsError(f"{where} must be a table, got {value!r}")
    if isinstance(value, dict):
        return value
    if isinstance(value, bool):  # `required = true` in TOML for a setting that also takes words
        return "true" if value else "false"
    return str(value)


def load(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Defaults < TOML file < environment. `path` None: $STRANA_CONFIG or ./strana.toml if present."""
    environ = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {}
    for section, key, default, _ in SETTINGS:
        values.setdefault(section, {})[key] = default
    defaults = {(s, k): d for s, k, d, _ in SETTINGS}

    source = "defaults"
    if path is None:
        path = environ.get("STRANA_CONFIG") or ("strana.toml" if Path("strana.toml").exists() else None)
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file {p} does not exist (set STRANA_CONFIG or pass --config)") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{p} is not valid TOML: {exc}") from None
        source = str(p)
        for section, table in data.items():
            if not isinstance(table, dict):
                raise SettingsError(f"{p}: [{section}] must be a table")
            for key, value in table.items():
                if (section, key) not in defaults:
                    # Extra sections (sites, webhooks, ...) are kept as-is for the parts that read them.
                    values.setdefault(section, {})[key] = value
                    continue
                values[section][key] = _coerce(section, key, defaults[section, key], value, str(p))

    for name, value in environ.items():
        if not name.startswith("STRANA_") or "__" not in name:
            continue
        section, _, key = name[len("STRANA_"):].lower().partition("__")
        if (section, key) in defaults:
            values[section][key] = _coerce(section, key, defaults[section, key], value, name)
            if source == "defaults":
                source = "environment"
    _validate(values)
    return Settings(values=values, source=source)


def _validate(values: dict[str, dict[str, Any]]) -> None:
    choices = {
        ("server", "role"): ("all", "ingest"),
        ("privacy", "dnt_policy"): ("ignore", "anonymous", "drop"),
        ("bus", "kind"): ("memory", "kafka", "nats"),
        ("ingest", "durability"): ("spool", "commit"),
        ("sink", "kind"): ("duckdb", "parquet"),
        ("auth", "required"): ("auto", "true", "false"),
    }
    for (section, key), allowed in choices.items():
        if values[section][key] not in allowed:
            raise SettingsError(f"[{section}] {key} must be one of {', '.join(allowed)}, got {values[section][key]!r}")
    if values["sink"]["scheme"] not in ("http", "https"):
        raise SettingsError(f"[sink] scheme must be http or https, got {values['sink']['scheme']!r}")
    for section, key in (("server", "port"), ("ingest", "commit_rows"), ("ingest", "max_batch_events"),
                         ("bus", "partitions"), ("bus", "max_in_flight")):
        if values[section][key] <= 0:
            raise SettingsError(f"[{section}] {key} must be positive")
    if not 0 <= values["server"]["background_nice"] <= 19:
        raise SettingsError("[server] background_nice must be 0 (off) to 19 nice steps, got "
                            f"{values['server']['background_nice']!r}")
    if values["sink"]["threads"] < 0:
        raise SettingsError("[sink] threads must be 0 (DuckDB's default, one per core) or a number of threads")
