"""Prometheus metrics, declared in one place so /metrics documents itself."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

requests_total = Counter("strana_ingest_requests_total", "Ingest requests by route and status",
                         ["route", "status"], registry=REGISTRY)
rejected_total = Counter("strana_ingest_rejected_total", "Requests refused as bad input, by route and reason",
                         ["route", "reason"], registry=REGISTRY)
accepted_total = Counter("strana_events_accepted_total", "Events accepted (2xx) by way in", ["via"],
                         registry=REGISTRY)
dropped_total = Counter("strana_events_dropped_total", "Events dropped by an enhancer, by reason", ["reason"],
                        registry=REGISTRY)
quarantined_total = Counter("strana_events_quarantined_total", "Events kept in quarantine, by way in and reason",
                            ["source", "reason"], registry=REGISTRY)
stored_total = Counter("strana_events_stored_total", "Events committed to the store", registry=REGISTRY)
store_failures_total = Counter("strana_store_failures_total", "Group commits that failed", registry=REGISTRY)
sink_backlog_waits_total = Counter(
    "strana_sink_backlog_waits_total",
    "Times the worker waited for the spool's loader to catch up (more than a load behind); ingest answers 503 "
    "while the bus is full meanwhile", registry=REGISTRY)
commit_rows = Histogram("strana_commit_batch_rows", "Events per group commit",
                        buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000), registry=REGISTRY)
commit_seconds = Histogram("strana_commit_seconds", "Time to commit one group to the store",
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
reads_out_of_memory_total = Counter("strana_reads_out_of_memory_total", "Report reads refused (503): the query "
                                    "needed more than [sink] memory_limit", registry=REGISTRY)
reads_store_unavailable_total = Counter("strana_reads_store_unavailable_total", "Report reads refused (503): "
                                        "the store was being reopened after DuckDB invalidated it",
                                        registry=REGISTRY)
today_rollups_total = Counter("strana_today_rollups_total", "Runs over a site-day of the rollups of today so far: "
                              "current, stepped (the events stored since) or built (from scratch)", ["how"],
                              registry=REGISTRY)
pending_events = Gauge("strana_pending_events", "Events waiting for a commit", registry=REGISTRY)
# where a long-running server's memory goes (read at scrape time): DuckDB's own count, and the visitors whose
# visit put_session keeps open (bounded by its max_visitors)
duckdb_memory = Gauge("strana_duckdb_memory_bytes", "Memory DuckDB holds (buffer cache, queries, appends)",
                      registry=REGISTRY)
duckdb_memory_by_tag = Gauge("strana_duckdb_memory_tag_bytes", "Memory DuckDB holds, by what it is for "
                             "(BASE_TABLE: cached table blocks, HASH_TABLE: queries, ...)", ["tag"], registry=REGISTRY)
active_visitors = Gauge("strana_active_visitors", "Visitors with an open visit in put_session's table",
                        registry=REGISTRY)
malloc_bytes = Gauge("strana_malloc_bytes", "glibc's heap: bytes in use, and free but held (fragmentation)",
                     ["state"], registry=REGISTRY)
python_blocks = Gauge("strana_python_allocated_blocks", "Memory blocks Python's allocator has handed out",
                      registry=REGISTRY)


class ChainTimes:
    """Exposes each enhancer step's cumulative time and calls, read at scrape time."""

    def __init__(self, chains):
        self.chains = chains

    def collect(self):
        seconds = CounterMetricFamily("strana_enhancer_seconds", "Time spent in each enhancer step", labels=["step"])
        calls = CounterMetricFamily("strana_enhancer_hits", "Hits seen by each enhancer step", labels=["step"])
        for chain in self.chains:
            for name in chain.names:
                seconds.add_metric([name], chain.seconds[name])
                calls.add_metric([name], chain.calls[name])
        yield seconds
        yield calls
