"""`strana worker`: the process loop around a WorkerRuntime — signals, a status file, a clean drain.

Why a module of its own: the embedded server's worker runs inside Granian's
lifespan, but a scale-out worker is a plain asyncio program with no HTTP. It
consumes until SIGTERM/SIGINT, then finishes the delivery in hand (store,
then ack), closes the consumer and checkpoints the store. Every second it
writes `<data_dir>/worker-status.json` (stored count, partitions, positions,
lag, in-flight) for `strana status`, since no other process may open the
worker's DuckDB file while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("strana.worker")


def write_status(path: Path, status: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, default=str))
    os.replace(tmp, path)


async def serve(runtime) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    status_path = runtime.settings.data_dir / "worker-status.json"
    await runtime.start()
    consuming = asyncio.create_task(runtime.run(), name="strana-worker")

    async def report() -> None:
        while True:
            write_status(status_path, {"pid": os.getpid(), "state": "consuming", "updated_at": time.time(),
                                       **await runtime.status()})
            await asyncio.sleep(1)

    reporter = asyncio.create_task(report(), name="strana-worker-status")
    log.info("strana worker: consuming")
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait([consuming, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    await runtime.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await consuming
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    final = await runtime.status()
    await runtime.close()
    write_status(status_path, {"pid": os.getpid(), "state": "stopped", "updated_at": time.time(), **final})
    log.info("strana worker: drained and closed; %d events stored this run", final["stored_this_run"])


def run(runtime) -> int:
    import uvloop

    runtime.open()
    uvloop.run(serve(runtime))
    return 0
