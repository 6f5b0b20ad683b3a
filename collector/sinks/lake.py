"""Where the event lake lives: a local folder or an S3 bucket/prefix, behind five small operations.

The Parquet sink, the lake reader, compaction and retention only ever `put`,
`get`, `list`, `delete` and `exists` objects under one root, so a folder and
a bucket behave the same. What they promise:

- `put` is atomic: local files are written to a dot-named temporary file,
  fsynced and renamed; on S3 the finished object goes up in one request (or
  a multipart upload that completes at close), so no reader ever sees half
  a file.
- Errors from the store are retried a few times, then raised as `LakeError`
  with a message that says where the lake is and what to check.

Layout under the root (Hive-style, readable by any Parquet tool):

    events/site=<site>/date=<YYYY-MM-DD>/<name>.parquet   exactly events.SCHEMA
    drops/site=<site>/date=<YYYY-MM-DD>/<name>.parquet    site, day, reason, n
    _manifests/<events|drops>/site=.../date=.../<id>.json  what compaction merged
    _positions/<stream>/<part>.json                        bus positions (scale-out)
    _salts/<YYYY-MM-DD>.bin                                visitor-id salts
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

log = logging.getLogger("strana.lake")

KINDS = ("events", "drops")

# Drop counts as files: one row per (site, day, reason) and write; read them with sum(n) GROUP BY.
DROPS_SCHEMA = pa.schema([("site", pa.string()), ("day", pa.date32()), ("reason", pa.string()), ("n", pa.uint64())])


class LakeError(OSError):
    """The object store refused or could not be reached; the message says what to check."""


def uuid7() -> str:
    """A time-ordered id (RFC 9562 UUIDv7 layout) as 32 hex digits: names sort by creation time."""
    ms = time.time_ns() // 1_000_000
    value = (ms << 80) | (0x7 << 76) | (secrets.randbits(12) << 64) | (0b10 << 62) | secrets.randbits(62)
    return uuid.UUID(int=value).hex


def partition_dir(kind: str, site: str, day: dt.date | str) -> str:
    return f"{kind}/site={urllib.parse.quote(site, safe='')}/date={day}"


def parse_partition(rel_dir: str) -> tuple[str, str, dt.date] | None:
    """'events/site=a.com/date=2026-11-23' -> ('events', 'a.com', date); None for anything else."""
    parts = rel_dir.strip("/").split("/")
    if len(parts) != 3 or parts[0] not in KINDS or not parts[1].startswith("site=") \
            or not parts[2].startswith("date="):
        return None
    try:
        day = dt.date.fromisoformat(parts[2][5:])
    except ValueError:
        return None
    return parts[0], urllib.parse.unquote(parts[1][5:]), day


@dataclass(frozen=True)
class LakeConfig:
    path: str  # s3://bucket/prefix or a folder
    endpoint: str = ""  # host:port or URL of an S3-compatible server; empty: AWS
    region: str = "us-east-1"
    access_key: str = ""  # empty: the AWS_* environment / instance credentials
    secret_key: str = ""
    scheme: str = "https"
    path_style: bool = True

    @classmethod
    def from_settings(cls, settings) -> LakeConfig:
        s = settings.sink
        return cls(path=s.path or str(settings.data_dir / "lake"), endpoint=s.endpoint, region=s.region,
                   access_key=s.access_key, secret_key=s.secret_key, scheme=s.scheme, path_style=s.path_style)


class Lake:
    """One root in a filesystem; paths given to the methods are relative to it, with '/' separators."""

    def __init__(self, config: LakeConfig, attempts: int = 3):
        self.config = config
        self.attempts = attempts
        self.is_s3 = config.path.startswith("s3://")
        if self.is_s3:
            endpoint, scheme = config.endpoint, config.scheme
            if "://" in endpoint:
                scheme, endpoint = endpoint.split("://", 1)
            kwargs = {}
            if config.access_key:
                kwargs = {"access_key": config.access_key, "secret_key": config.secret_key}
            self.fs = pafs.S3FileSystem(
                endpoint_override=endpoint or None, scheme=scheme, region=config.region,
                force_virtual_addressing=not config.path_style, allow_delayed_open=True,
                connect_timeout=2, request_timeout=10,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2), **kwargs)
            self.root = config.path[len("s3://"):].strip("/")
            self.where = f"{config.path} (endpoint {scheme}://{endpoint or 'AWS'})"
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = str(Path(config.path).resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.where = self.root

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def uri(self, rel: str = "") -> str:
        return ("s3://" if self.is_s3 else "") + self.full(rel)

    def _retry(self, what: str, func, *args):
        delay = 0.1
        for attempt in range(1, self.attempts + 1):
            try:
                return func(*args)
            except FileNotFoundError:
                raise
            except OSError as exc:
                if attempt == self.attempts:
                    raise LakeError(f"event lake at {self.where}: {what} failed after {attempt} attempts: {exc}. "
                                    "Check [sink] path, endpoint, scheme, region and the access key/secret "
                                    "(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).") from exc
                log.warning("event lake: %s failed (%s); retrying", what, exc)
                time.sleep(delay)
                delay *= 3

    # ---- the five operations ----

    def put(self, rel: str, data: bytes) -> None:
        self._retry(f"writing {rel}", self._put, rel, data)

    def _put(self, rel: str, data: bytes) -> None:
        path = self.full(rel)
        if self.is_s3:
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, rel: str) -> bytes:
        def read():
            with self.fs.open_input_stream(self.full(rel)) as f:
                return f.read()
        return self._retry(f"reading {rel}", read)

    def exists(self, rel: str) -> bool:
        info = self._retry(f"checking {rel}", self.fs.get_file_info, self.full(rel))
        return info.type == pafs.FileType.File

    def delete(self, rel: str) -> None:
        try:
            self._retry(f"deleting {rel}", self.fs.delete_file, self.full(rel))
        except FileNotFoundError:
            pass

    def list(self, prefix: str) -> list[str]:
        """Relative paths of the files under prefix (recursive); temporary and hidden files left out."""
        selector = pafs.FileSelector(self.full(prefix), recursive=True, allow_not_found=True)
        infos = self._retry(f"listing {prefix}", self.fs.get_file_info, selector)
        cut = len(self.root) + 1
        return sorted(i.path[cut:] for i in infos
                      if i.type == pafs.FileType.File and not i.base_name.startswith("."))

    def probe(self) -> None:
        """Write, read and delete a small object: fails at start with a clear message rather than at the
        first event."""
        rel = f"_probe/{uuid7()}"
        self.put(rel, b"strana")
        if self.get(rel) != b"strana":
            raise LakeError(f"event lake at {self.where}: read back something else than was written")
        self.delete(rel)
