"""What start-up leaves resident: the glibc heap (what /metrics reports of it, and the trim after start-up) and
the pages of mapped files that only start-up read."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import re

from collector import metrics


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
    malloc_trim()


def malloc_trim() -> None:
    """glibc's malloc_trim(0): free pages inside the heap go back to the kernel."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


MADV_DONTNEED = 4
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


def _read_only_file_mappings(smaps: str) -> list[tuple[int, int, int]]:
    """(start, length, resident kB) of each mapping of a file that is not writable and holds no anonymous
    (copy-on-write) page: dropping such a mapping's pages loses nothing, the file still has them."""
    mappings = []  # [start, length, Rss kB, Anonymous kB], None for a mapping that is not a candidate
    with open(smaps) as f:
        for line in f:
            head = _MAPPING.match(line)
            if head:
                start, end, perms, path = head.groups()
                usable = "w" not in perms and path.startswith("/") and not path.endswith("(deleted)")
                mappings.append([int(start, 16), int(end, 16) - int(start, 16), 0, 0] if usable else None)
            elif mappings and mappings[-1] is not None and line.startswith(("Rss:", "Anonymous:")):
                mappings[-1][2 if line.startswith("Rss:") else 3] = int(line.split()[1])
    return [(start, length, rss) for start, length, rss, anon in filter(None, mappings) if rss and not anon]


def release_file_pages(smaps: str = "/proc/self/smaps") -> int:
    """Unmap the resident pages of read-only file mappings (shared libraries' code and data, the GeoIP
    database) and return their kB. Start-up touches much more of them than serving does (import-time code,
    DuckDB's catalog and migration paths, every user agent pattern compiled once), and on kernels with large
    page-cache folios each touch maps a whole folio: idle RssFile was 110 MB here. Dropped pages stay in the page
    cache, so what serving uses comes back on its first touch as a minor fault, without reading the disk; RSS
    then counts what the server uses. Pages of a mapping that holds a copy-on-write page (relocations, a
    debugger's breakpoints) are never dropped: those differ from the file."""
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    try:
        mappings = _read_only_file_mappings(smaps)
    except OSError:  # not Linux
        return 0
    for start, length, resident in mappings:
        if madvise(start, length, MADV_DONTNEED) == 0:
            released += resident
    return released


def _events_counted() -> float:
    """Events accepted (any way in; an ingest-only process stores none) plus events stored (a worker)."""
    return sum(sample.value for counter in (metrics.accepted_total, metrics.stored_total)
               for family in counter.collect() for sample in family.samples if sample.name.endswith("_total"))


class IdleRelease:
    """A scheduled job: when no event was accepted or stored since its last run, give back the heap's free pages
    and the file pages serving mapped (bench/memory.py: 200 hits map most of the 54 MB GeoIP database and ~35 MB
    more of DuckDB's code on a kernel with large folios), so an idle server's RSS falls back to what start-up
    left."""

    def __init__(self, counted=_events_counted):
        self.counted = counted
        self.seen = None

    def __call__(self) -> int:
        now = self.counted()
        idle, self.seen = now == self.seen, now
        if not idle:
            return 0
        malloc_trim()
        return release_file_pages()
