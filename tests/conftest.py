"""Fixtures that drive the real thing: `strana serve` under Granian on a free loopback port, DuckDB on disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
STRANA = [sys.executable, "-m", "collector.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StranaServer:
    """One `strana serve` process. `stop()` sends SIGTERM and waits; `db()` opens the store read-only after."""

    def __init__(self, data_dir: Path, env: dict | None = None, config: Path | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> StranaServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*STRANA]
        if self.config:
            args += ["--config", str(self.config)]
        args += ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strana serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"strana serve did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        if sig == signal.SIGKILL:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        # Granian's worker is a child of the main process: make sure it is gone before the DB is opened.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self._log.close()
        return code

    def db(self) -> duckdb.DuckDBPyConnection:
        assert self.proc is None or self.proc.poll() is not None, "stop() the server before opening its store"
        return duckdb.connect(str(self.data_dir / "strana.duckdb"), read_only=True)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(env={...}, config=path) → started StranaServer; all are stopped at teardown."""
    servers: list[StranaServer] = []

    def make(env: dict | None = None, config: Path | None = None, data_dir: Path | None = None,
             start: bool = True) -> StranaServer:
        server = StranaServer(data_dir or tmp_path / f"data{len(servers)}", env=env, config=config)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server) -> StranaServer:
    return make_server()


class StranaWorker:
    """One `strana worker` process (scale-out consumer). It holds its DuckDB file, so progress is read from
    the status file it rewrites every second; `db()` opens the store read-only once stopped."""

    def __init__(self, data_dir: Path, env: dict, partitions: str | None = None):
        self.data_dir = data_dir
        self.env = {**os.environ, **env}
        self.partitions = partitions
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "worker.log"
        self.status_path = data_dir / "worker-status.json"

    def start(self, timeout: float = 60) -> StranaWorker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*STRANA, "worker", "--data-dir", str(self.data_dir)]
        if self.partitions is not None:
            args += ["--partitions", self.partitions]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strana worker exited with {self.proc.returncode}:\n{self.log()}")
            status = self.status()
            if status and status.get("pid") == self.proc.pid:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"strana worker did not start in {timeout}s:\n{self.log()}")

    def status(self) -> dict | None:
        import json

        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self._log.close()
        return code

    def db(self) -> duckdb.DuckDBPyConnection:
        assert self.proc is None or self.proc.poll() is not None, "stop() the worker before opening its store"
        return duckdb.connect(str(self.data_dir / "strana.duckdb"), read_only=True)
