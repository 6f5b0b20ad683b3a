"""Work that no request waits for runs at a lower CPU priority than the event loop that answers ingest.

On a small machine a dashboard read over a big day (DuckDB on every core for
a second or two), the spool loader and the rollup jobs compete with ingest
for the same cores; at normal priority each read round made ingest's p99
climb with the size of today (bench/soak_max.py --rate 2000, 10 minutes:
worst minute's p99 59 ms against 29.5 in the first; 38 ms at nice 10; 21.6
against 16.1 at nice 19, with more reads done, not fewer). On Linux the nice
value is per thread, and a thread a thread starts inherits it, so:

- DuckDB is opened from a thread that has lowered itself: the threads DuckDB
  starts for its queries and loads inherit the lower priority;
- the spool loader, each thread that takes a read connection (reports, the
  admin CLI) and the scheduled jobs lower themselves before they work.

Never lowered: the thread that runs an event loop (ingest answers there), and
the thread that appends the group commit to the spool (a 2xx waits for it).
Niceness is only raised, never lowered again (that needs privileges), so a
lowered thread stays lowered; [server] background_nice = 0 turns it off.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_state = {"nice": 19}  # [server] background_nice: the lowest priority there is, short of SCHED_IDLE
_lowered = threading.local()


def configure(nice: int) -> None:
    """How far below the server's own priority background threads run (0: not at all; at most 19)."""
    _state["nice"] = max(0, min(19, int(nice)))


def lower_this_thread() -> bool:
    """Lower the calling thread's priority, once; False where it must not be (or cannot be) lowered."""
    if getattr(_lowered, "done", False):
        return True
    step = _state["nice"]
    if not step or threading.current_thread() is threading.main_thread() or _runs_event_loop():
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except (AttributeError, OSError):  # not Linux, or not allowed: priority stays as it was
        return False
    _lowered.done = True
    return True


def _runs_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_lowered(fn: Callable[[], T]) -> T:
    """fn() in a short-lived thread that lowered itself first: threads fn starts inherit its priority."""
    outcome: dict[str, object] = {}

    def body() -> None:
        lower_this_thread()
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="strana-open-lowered")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def lowered(fn: Callable[..., T]) -> Callable[..., T]:
    """fn, lowering the thread it runs in first (for scheduled jobs)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        lower_this_thread()
        return fn(*args, **kwargs)

    return wrapper
