"""Shared by bench/soak.py and bench/faults.py: a `strana serve` process on a free port, its worker's RSS,
events tagged with a unique `seq` prop, and counting what the store holds per seq (exactly once?)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, env: dict | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--port", str(self.port), "--data-dir",
             str(self.data_dir)], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"strana serve exited with {self.proc.returncode}; see {self.data_dir}/server.log")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("strana serve did not become healthy")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if sig == signal.SIGKILL:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the DuckDB file is free once the whole group is gone
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def rss_mb(self) -> float | None:
        """RSS of the `strana serve` process: one process holds the server, the app and the store."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, IndexError):
            return None
        return None

    def rss_split_mb(self) -> dict[str, float]:
        """The server's RssAnon (heap, native buffers) and RssFile (mapped files: libraries, the GeoIP database)."""
        out = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key = line.split(":")[0]
                if key in ("RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) / 1024
        except (OSError, IndexError):
            pass
        return out

    def counts(self) -> dict[int, int]:
        """Stored rows per seq prop; the server must be stopped (DuckDB allows one process)."""
        import duckdb

        with duckdb.connect(str(self.data_dir / "strana.duckdb"), read_only=True) as db:
            rows = db.execute("SELECT props['seq'], count(*) FROM events WHERE props['seq'] IS NOT NULL "
                              "GROUP BY ALL").fetchall()
        return {int(seq): n for seq, n in rows}


def event(seq: int) -> dict:
    return {"n": "pageview", "u": f"https://example.com/p/{seq % 500}", "d": "example.com",
            "r": "https://www.google.com/", "p": {"seq": str(seq)}}


def exactly_once(accepted: set[int], counts: dict[int, int]) -> tuple[int, int]:
    """(lost, doubled): accepted seqs not stored, and seqs stored more than once."""
    return sum(1 for s in accepted if s not in counts), sum(1 for n in counts.values() if n > 1)
