"""`strana serve`: Granian's embedded server in this one process, on Strana's own event loop.

Why embedded: Granian's usual entry point forks a worker and keeps a
supervisor process beside it, which held ~25 MB of the idle server's RSS for
no work (bench/memory.py). Here Granian's server runs as a task on the loop
that also runs the app, the lifespan around it: start-up before the first
request, and on SIGTERM or SIGINT the server stops taking connections, answers
what is in flight, then the lifespan drains and commits everything accepted.

The app is still an ASGI and RSGI app that any server can load (README: other
servers); this module is only how Strana runs itself.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import uvloop
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

STOP_SECONDS = 60  # as long as Granian's own workers_kill_timeout in the multi-process server Strana ran before


async def _serve(host: str, port: int, read_timeout: float) -> int:
    from collector.app import create_app

    app = create_app()
    lifespan = app.rsgi_fallback.lifespan
    await lifespan.startup()
    if lifespan.interrupt:
        print(f"strana: start-up failed: {lifespan.exc}", file=sys.stderr, flush=True)
        return 1
    # the bound method, not the app: the app's __rsgi_init__ / __rsgi_del__ run the lifespan for Granian's own
    # worker processes, and here the lifespan is run above and below
    server = Server(app.__rsgi__, address=host, port=port, interface=Interfaces.RSGI, websockets=False,
                    log_access=False, backlog=1024,  # the backlog sets Granian's backpressure: as its CLI does
                    # headers that trickle in slower than this are cut off (slow-loris); bodies: sources/http.py
                    http1_settings=HTTP1Settings(header_read_timeout=int(read_timeout * 1000)))
    # what is still in flight this long after a stop is cut off (a client that never finishes its request must
    # not keep the server from stopping); what the lifespan then stores is everything already accepted
    server.workers_kill_timeout = STOP_SECONDS
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server.serve()
    except TimeoutError:
        print(f"strana: requests still in flight {STOP_SECONDS} s after the stop were cut off", file=sys.stderr,
              flush=True)
    finally:
        await lifespan.shutdown()
    return 0


def can_listen(host: str, port: int) -> str | None:
    """None when host:port is free to listen on; else why not. Asked before start-up opens the store, so a
    taken port is one clear line, not a traceback after the migrations ran."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Granian binds
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def serve(host: str, port: int, read_timeout: float, data_dir) -> int:
    problem = can_listen(host, port)
    if problem:
        print(f"strana: cannot listen on {host}:{port}: {problem}. Is another server running there? "
              "Stop it, or pick another port with --port (or [server] port).", file=sys.stderr, flush=True)
        return 1
    print(f"strana: serving on http://{host}:{port} (data in {data_dir})", file=sys.stderr, flush=True)
    return uvloop.run(_serve(host, port, read_timeout))
