"""The one place that wires Strana together: settings → store → chains → bus → worker → routes.

`create_app()` is the ASGI factory Granian runs: the embedded default (role
`all`: memory bus, worker and DuckDB in this process) or role `ingest` (edge
only, publishing to Kafka/NATS; no store is opened). `WorkerRuntime` is what
`strana worker` runs: bus consumer → consumer chain → sink. The three ingest routes are
bare ASGI callables (the hot path); everything else is a Litestar app, whose
lifespan opens and closes the parts in order. On shutdown (SIGTERM) the bus
stops taking new events, the worker drains and commits everything accepted,
then the store is checkpointed and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field

import duckdb
from litestar import Litestar, MediaType, get
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.response import Response
from prometheus_client import generate_latest

from collector import cpu_priority, metrics, migrate
from collector.admin import ROUTES as ADMIN_ROUTES
from collector.auth import wiring as auth_wiring
from collector.bus import BusError, parse_partitions
from collector.bus.memory import MemoryBus
from collector.edge import Edge
from collector.enhancers import consumer_chain, edge_chain
from collector.heap import heap_info, release_file_pages, trim_heap
from collector.jobs import start_scheduler, stop_jobs
from collector.ratelimit import site_limiter, wrap_routes
from collector.retention import RetentionPolicy
from collector.rsgi import AsgiOverRsgi
from collector.salts import DuckDBSaltStore, SaltKeeper
from collector.schemas import Schemas
from collector.settings import Settings, SettingsError, load
from collector.sinks.duckdb import DuckDBSink, query_threads
from collector.sinks.spool import SpoolingSink
from collector.site_registry import SiteRegistry
from collector.sources.batch import BatchSource
from collector.sources.event import EventSource
from collector.sources.http import Request, RsgiRequest, parse_networks
from collector.sources.pixel import PixelSource
from collector.sources.plausible import Limits
from collector.sources.replay import Replayer
from collector.sources.webhooks import PREFIX as HOOKS_PREFIX
from collector.sources.webhooks import WebhookSource
from collector.static_js import TrackerFiles, load_tracker_files
from collector.web_request import JsonSafeRequest
from collector.webhooks import load_hooks
from collector.worker import Worker
from reports.api import ROUTES as REPORT_ROUTES

log = logging.getLogger("strana")


def make_bus(settings: Settings, *, consume: bool = False):
    if settings.bus.kind == "kafka":
        from collector.bus.kafka import KafkaBus
        return KafkaBus(settings, consume=consume)
    from collector.bus.nats import NatsBus
    return NatsBus(settings, consume=consume)


def make_salt_store(settings: Settings):
    if settings.bus.kind == "kafka":
        from collector.salts_kafka import KafkaSaltStore
        return KafkaSaltStore(settings)
    from collector.salts_nats import NatsSaltStore
    return NatsSaltStore(settings)


def check_bus(settings: Settings, role: str) -> None:
    """Before serving: the role fits the bus, the brokers answer, the topics/streams exist. Raises BusError."""
    kind = settings.bus.kind
    if role == "all" and kind != "memory":
        raise BusError(f"[bus] kind = {kind} is for scale-out: run `strana serve --role ingest` and `strana worker`")
    if role != "all" and kind == "memory":
        raise BusError(f"[bus] kind = memory cannot be shared between processes: set it to kafka or nats for {role}")
    if kind == "kafka":
        from collector.bus.kafka import ensure_topics
        ensure_topics(settings)
    elif kind == "nats":
        from collector.bus.nats import ensure_stream
        asyncio.run(ensure_stream(settings))


@dataclass
class Runtime:
    settings: Settings
    sink: object = None  # DuckDBSink | ParquetSink (a union of two classes trips Litestar's msgspec signature)
    retention: RetentionPolicy | None = None
    salts: SaltKeeper | None = None
    salt_store: object = None
    bus: object = None
    edge: Edge | None = None
    sites: SiteRegistry | None = None
    state_reader: object = None  # () -> a DuckDB cursor where sites, people and keys live
    _state: object = None
    worker: Worker | None = None
    hooks: dict = field(default_factory=dict)
    schemas: Schemas = field(default_factory=Schemas)
    replayer: Replayer | None = None
    tasks: list = field(default_factory=list)
    scheduler: object = None
    jobs_running: set = field(default_factory=set)  # threads of scheduled jobs (collector/jobs.py in_thread)

    def sample_memory(self) -> None:
        """Set the memory gauges (/metrics): DuckDB's own count, put_session's table size, and the heap: Python's
        blocks, glibc's bytes in use and held free, so a growing RSS can be told apart (bench/soak_max.py)."""
        metrics.python_blocks.set(sys.getallocatedblocks())
        if (info := heap_info()) is not None:
            metrics.malloc_bytes.labels("in_use").set(info.uordblks)
            metrics.malloc_bytes.labels("free").set(info.fordblks)
        if self.worker is None:
            return
        for _, step in self.worker.chain.steps:
            if hasattr(step, "active"):
                metrics.active_visitors.set(len(step.active))
        if hasattr(self.sink, "reader") and not self.ingest_only:
            with contextlib.suppress(Exception):  # a lake sink has no DuckDB of its own to ask
                cur = self.sink.reader()
                try:
                    tags = cur.execute("SELECT tag, memory_usage_bytes FROM duckdb_memory()").fetchall()
                finally:
                    cur.close()
                for tag, used in tags:
                    metrics.duckdb_memory_by_tag.labels(tag).set(used)
                metrics.duckdb_memory.set(sum(used for _, used in tags))

    @property
    def ingest_only(self) -> bool:
        return self.settings.server.role == "ingest"

    def open(self) -> None:
        s = self.settings
        try:  # checked before the store is opened: a config mistake stops here, naming the table
            self.hooks = load_hooks(s)
            self.schemas = Schemas.from_settings(s)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        cpu_priority.configure(s.server.background_nice)
        if self.ingest_only:
            return self._open_ingest()
        if s.bus.kind != "memory":
            raise SettingsError(f"[bus] kind = {s.bus.kind} needs `strana serve --role ingest` and `strana worker`")
        self.retention = RetentionPolicy.from_settings(s)
        if s.sink.kind == "parquet":
            # the lake: a 2xx waits for the files (a spool's replay could re-batch and name files differently)
            from collector.sinks.lake import Lake, LakeConfig  # here: pyarrow.parquet/dataset cost ~16 MB RSS
            from collector.sinks.parquet import LakeSaltStore, ParquetSink
            lake = Lake(LakeConfig.from_settings(s))
            store, durability = lake.uri(), "lake write"
            self.sink = ParquetSink(lake, keep=self.retention.keep, list_ttl=s.sink.list_cache_seconds)
            self.salts = SaltKeeper(LakeSaltStore(lake))
            # sites, people and keys are small mutable tables: a local DuckDB file beside the lake
            s.data_dir.mkdir(parents=True, exist_ok=True)
            self._state = duckdb.connect(str(s.data_dir / "state.duckdb"))
            migrate.apply(self._state)
            self.state_reader = self._state.cursor
        else:
            store, durability = s.data_dir / "strana.duckdb", s.ingest.durability
            self.sink = DuckDBSink(store, memory_limit=s.sink.memory_limit, threads=query_threads(s.sink.threads))
            if s.ingest.durability == "spool":
                self.sink = SpoolingSink(self.sink, s.data_dir / "spool")
                self.sink.recover()
            self.salts = SaltKeeper(DuckDBSaltStore(self.sink.reader))
            self.state_reader = self.sink.reader
        self.bus = MemoryBus(s.ingest.commit_rows, s.ingest.commit_interval_ms, s.ingest.max_pending_events)
        self.sites = SiteRegistry(s, self.state_reader)  # sites table + file, in memory; refreshed on change
        self.sites.reload()
        self.edge = Edge(edge_chain(s, self.salts, self.sites), self.bus)
        self.worker = Worker(self.bus, consumer_chain(s), self.sink)
        self.worker.warm_up()
        self.replayer = Replayer(self.edge, self.hooks, self.schemas, Limits.from_settings(s), self.connect)
        metrics.REGISTRY.register(metrics.ChainTimes([self.edge.chain, self.worker.chain]))
        log.info("strana: store %s (2xx after %s), bus %s, settings from %s", store, durability,
                 s.bus.kind, s.source)

    def _open_ingest(self) -> None:
        """Edge only: sources + edge chain → Kafka/NATS. Salts from the bus's shared store, no DuckDB file."""
        s = self.settings
        self.salt_store = make_salt_store(s)
        self.salts = SaltKeeper(self.salt_store)
        self.salts.pair(int(time.time() // 86400))  # fetch today's salt now, not on the first request
        self.bus = make_bus(s)
        self.sites = SiteRegistry(s, None)  # the file's sites only: the sites table lives with a store
        self.sites.reload()
        self.edge = Edge(edge_chain(s, self.salts, self.sites), self.bus)
        metrics.REGISTRY.register(metrics.ChainTimes([self.edge.chain]))
        log.info("strana: ingest only, publishing to %s, settings from %s", s.bus.kind, s.source)

    def connect(self):
        """A read connection that sees every event acknowledged so far (waits briefly for the spool loader).
        The calling thread (a report's worker thread) drops below ingest's CPU priority: collector/cpu_priority.py"""
        cpu_priority.lower_this_thread()
        if hasattr(self.sink, "wait_loaded"):
            self.sink.wait_loaded(timeout=2.0)
        return self.sink.reader()

    async def start(self, jobs: bool = True) -> None:
        await self.bus.start()
        if self.worker is not None:
            self.tasks.append(asyncio.create_task(self.worker.run(), name="strana-worker"))
        if jobs:
            self.scheduler = start_scheduler(self)

    async def stop(self) -> None:
        log.info("strana: stopping: taking no new events, storing what was accepted")
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
        try:
            await self.bus.stop()
            for task in self.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.ingest_only:
                await self.bus.close()
                self.sites.close()
                self.salt_store.close()
                log.info("strana: ingest drained and closed")
                return
            self.worker.close()
            self.sites.close()
            self.sink.close()  # interrupts a job still running on it
            await stop_jobs(self.jobs_running)
            if self._state is not None:
                self._state.close()
        except BaseException:
            log.exception("strana: error while stopping")
            raise
        log.info("strana: drained and closed; %d events stored this run", self.worker.stored)


@dataclass
class WorkerRuntime:
    """`strana worker`: consume Kafka/NATS, run the consumer chain, store with the bus position, then ack."""

    settings: Settings
    sink: object = None
    bus: object = None
    worker: Worker | None = None
    stored_before: int = 0

    def open(self) -> None:
        s = self.settings
        owned = parse_partitions(s.worker.partitions, s.bus.partitions)
        if s.sink.kind == "parquet":  # files named after their offset range: a rewrite replaces, never doubles
            from collector.sinks.lake import Lake, LakeConfig
            from collector.sinks.parquet import ParquetSink

            lake = Lake(LakeConfig.from_settings(s))
            self.sink = ParquetSink(lake, keep=RetentionPolicy.from_settings(s).keep,
                                    list_ttl=s.sink.list_cache_seconds)
            where = lake.uri()
        else:  # the bus position is stored in the same DuckDB transaction as the rows
            self.sink = DuckDBSink(s.data_dir / "strana.duckdb", memory_limit=s.sink.memory_limit,
                                   threads=query_threads(s.sink.threads))
            where = self.sink.path
        self.bus = make_bus(s, consume=True)
        self.bus.consume_from(self.sink.positions(), owned)
        self.worker = Worker(self.bus, consumer_chain(s), self.sink)
        self.worker.warm_up()
        reader = self.sink.reader()
        self.stored_before = reader.execute("SELECT count(*) FROM events").fetchone()[0]
        log.info("strana worker: store %s, bus %s, partitions %s", where, s.bus.kind,
                 owned if owned is not None else "all/group")

    async def start(self) -> None:
        await self.bus.start()

    async def run(self) -> None:
        await self.worker.run()

    async def stop(self) -> None:
        await self.bus.stop()

    async def close(self) -> None:
        await self.bus.close()
        self.worker.close()
        self.sink.close()

    async def status(self) -> dict:
        if hasattr(self.bus, "refresh_lag"):
            await self.bus.refresh_lag()
        return {"stored_this_run": self.worker.stored, "stored_total": self.stored_before + self.worker.stored,
                **self.bus.status()}


@get("/healthz", media_type=MediaType.JSON, sync_to_thread=False)
def healthz(runtime: Runtime) -> dict:
    return {"status": "ok", "pending": runtime.bus.pending()}


@get("/metrics", sync_to_thread=False)
def prometheus(runtime: Runtime) -> Response:
    metrics.pending_events.set(runtime.bus.pending())
    runtime.sample_memory()
    return Response(generate_latest(metrics.REGISTRY), media_type="text/plain; version=0.0.4")


def out_of_memory(request, exc: duckdb.OutOfMemoryException) -> Response:
    """A report query that needs more than [sink] memory_limit: 503, and what to change, not a bare 500."""
    metrics.reads_out_of_memory_total.inc()
    log.warning("a read ran out of DuckDB's memory_limit: %s %s: %s", request.method, request.url.path,
                str(exc).splitlines()[0])
    return Response({"error": "this report needs more memory than the store may use ([sink] memory_limit); "
                              "try a shorter period, or raise memory_limit"},
                    status_code=503, headers={"retry-after": "30"})


def store_unavailable(request, exc: duckdb.Error) -> Response:
    """A read that met the store invalidated, or closed under it while the spool's loader opens it again
    (collector/sinks/spool.py): 503 with a retry, not a 500; the store comes back by itself."""
    metrics.reads_store_unavailable_total.inc()
    log.warning("a read found the store unavailable: %s %s: %s", request.method, request.url.path,
                str(exc).splitlines()[0])
    return Response({"error": "the store is being reopened after an error; try again in a few seconds"},
                    status_code=503, headers={"retry-after": "5"})


class FrontDoor:
    """Routes the ingest paths (exact, or by prefix) straight to their sources; everything else to Litestar.

    It speaks ASGI (__call__) and Granian's RSGI (__rsgi__, what `strana serve` uses: collector/rsgi.py)."""

    def __init__(self, routes: dict, fallback, prefixes: dict | None = None, read_timeout: float | None = None):
        self.read_timeout = read_timeout  # seconds an ingest body may take to arrive (Request.body reads it)
        self.routes = routes
        self.fallback = fallback
        self.rsgi_fallback = AsgiOverRsgi(fallback, read_timeout)
        self.prefixes = list((prefixes or {}).items())

    def _route(self, path: str):
        route = self.routes.get(path)
        if route is None:
            for prefix, candidate in self.prefixes:
                if path.startswith(prefix):
                    return candidate
        return route

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            route = self._route(scope["path"])
            if route is not None:
                return await self._guarded(route, Request(scope, receive, send, self.read_timeout))
        return await self.fallback(scope, receive, send)

    async def __rsgi__(self, scope, protocol):
        if scope.proto == "http":
            route = self._route(scope.path)
            if route is not None:
                return await self._guarded(route, RsgiRequest(scope, protocol, self.read_timeout))
        return await self.rsgi_fallback(scope, protocol)

    def __rsgi_init__(self, loop):
        self.rsgi_fallback.startup(loop)

    def __rsgi_del__(self, loop):
        self.rsgi_fallback.shutdown(loop)

    async def _guarded(self, route, request: Request):
        try:
            return await route(request)
        except Exception:  # a bug: say so in the log, answer 500 if nothing was sent yet
            log.exception("unhandled error on %s %s", request.method, request.path)
            if not request.responded:
                with contextlib.suppress(Exception):
                    await request.respond(500, b'{"error": "internal error (logged)"}')


# A group commit crosses threads twice (the event loop hands it to the sink thread, which hands the answer back),
# and each time the thread that wants the GIL waits up to the switch interval for a busy event loop to let go:
# Python's 5 ms default sat in every tracker request's latency. At 0.5 ms, bench/ingest.py's single events ran
# faster in each of 7 alternating pairs of runs here (+3% to +35%, ~+12% on average); batches unchanged.
GIL_SWITCH_SECONDS = 0.0005


def create_app(settings: Settings | None = None) -> FrontDoor:
    settings = settings or load()
    logging.basicConfig(level=settings.server.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    runtime = Runtime(settings)
    runtime.open()
    # people, keys, links (collector/auth/); an ingest-only process serves no reports, so it has no gate
    auth = None if runtime.ingest_only else auth_wiring.Auth(settings, runtime.state_reader, runtime.sites)
    if auth is not None:
        auth.setup_link()
    if runtime.sites.open_mode:
        log.info("strana: open mode: hits for any site are accepted; a site is created on its first hit")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar):
        await runtime.start()
        trim_heap()
        log.debug("strana: %d kB of start-up's file pages released", release_file_pages())
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        try:
            yield
        finally:
            await runtime.stop()

    web = Litestar(
        route_handlers=[healthz, prometheus,
                        *([] if runtime.ingest_only else [*REPORT_ROUTES, *ADMIN_ROUTES, *auth_wiring.ROUTES])],
        dependencies={
            "runtime": Provide(lambda: runtime, sync_to_thread=False),
            "connect": Provide(lambda: runtime.connect, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        lifespan=[lifespan] + ([auth_wiring.lifespan(auth)] if auth is not None else []),
        request_class=JsonSafeRequest,  # a body that is not JSON is a 400, also when deep or not UTF-8
        exception_handlers={duckdb.OutOfMemoryException: out_of_memory, duckdb.FatalException: store_unavailable,
                            duckdb.ConnectionException: store_unavailable},
        # a traceback is for a bug (5xx); a client's 4xx is counted and answered, not logged
        logging_config=LoggingConfig(log_exceptions="always", configure_root_logger=False,
                                     disable_stack_trace={*range(400, 500), duckdb.OutOfMemoryException,
                                                          duckdb.FatalException, duckdb.ConnectionException}),
    )
    # the site registry is the site gate (open/closed mode); per-site rate limit when configured
    limits = dataclasses.replace(Limits.from_settings(settings), sites=runtime.sites, site_rate=site_limiter(settings))
    trusted = parse_networks(settings.server.trusted_proxies)
    ing = settings.ingest
    routes = {
        "/api/event": EventSource(runtime.edge, limits, ing.max_body_bytes, trusted, runtime.schemas),
        "/p.gif": PixelSource(runtime.edge, limits, trusted),
        "/api/v1/batch": BatchSource(runtime.edge, limits, ing.max_batch_bytes, ing.max_batch_events, trusted,
                                     runtime.schemas,
                                     authorize=auth and auth_wiring.BatchKeys(auth.directory, runtime.sites)),
    }
    routes = {**wrap_routes(routes, settings, trusted), **TrackerFiles(load_tracker_files()).routes()}
    hooks = WebhookSource(runtime.hooks, runtime.edge, limits, ing.max_webhook_bytes, runtime.schemas)
    app = FrontDoor(routes, web if auth is None else auth_wiring.AuthGate(web, auth), {HOOKS_PREFIX: hooks},
                    read_timeout=float(settings.server.read_timeout_seconds))
    app.runtime = runtime
    return app
