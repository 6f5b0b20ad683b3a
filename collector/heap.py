"""The process heap as glibc sees it: what /metrics reports of it, and the trim after start-up."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _mallinfo2():
    """glibc's mallinfo2, looked up once (each /metrics scrape calls it); None where there is none."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2
    return fn


def heap_info() -> _Mallinfo2 | None:
    """glibc's mallinfo2() over all arenas (in use: uordblks, free but held: fordblks); None elsewhere."""
    fn = _mallinfo2()
    return fn() if fn is not None else None


def trim_heap() -> None:
    """Give back what start-up left free on the heap (imports, regex compiles, migrations): glibc keeps ~10 MB
    of it otherwise, for the whole life of the server (bench/memory.py, "free but held"). Then freeze what is
    left: modules, classes and compiled patterns live as long as the process, and without the freeze every
    full collection walks them all again (~0.1 s each under load, straight into a request's latency)."""
    gc.collect()
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)
