"""The one place that wires Strana together: settings → store → chains → bus → worker → routes.

`create_app()` is the ASGI factory Granian runs. The three ingest routes are
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
from dataclasses import dataclass, field

from litestar import Litestar, MediaType, get
from litestar.di import Provide
from litestar.response import Response
from prometheus_client import generate_latest

from collector import metrics
from collector.auth import wiring as auth_wiring
from collector.bus.memory import MemoryBus
from collector.edge import Edge
from collector.enhancers import consumer_chain, edge_chain
from collector.jobs import start_scheduler
from collector.ratelimit import site_limiter, wrap_routes
from collector.salts import DuckDBSaltStore, SaltKeeper
from collector.settings import Settings, load
from collector.sinks.duckdb import DuckDBSink
from collector.sinks.spool import SpoolingSink
from collector.site_registry import SiteRegistry
from collector.sources.batch import BatchSource
from collector.sources.event import EventSource
from collector.sources.http import parse_networks
from collector.sources.pixel import PixelSource
from collector.sources.plausible import Limits
from collector.static_js import TrackerFiles, load_tracker_files
from collector.worker import Worker
from reports.api import ROUTES as REPORT_ROUTES

log = logging.getLogger("strana")


@dataclass
class Runtime:
    settings: Settings
    sink: DuckDBSink | None = None
    salts: SaltKeeper | None = None
    bus: MemoryBus | None = None
    edge: Edge | None = None
    sites: SiteRegistry | None = None
    worker: Worker | None = None
    tasks: list = field(default_factory=list)
    scheduler: object = None

    def open(self) -> None:
        s = self.settings
        db_path = s.data_dir / "strana.duckdb"
        self.sink = DuckDBSink(db_path)
        if s.ingest.durability == "spool":
            self.sink = SpoolingSink(self.sink, s.data_dir / "spool")
            self.sink.recover()
        self.salts = SaltKeeper(DuckDBSaltStore(self.sink.reader()))
        self.bus = MemoryBus(s.ingest.commit_rows, s.ingest.commit_interval_ms, s.ingest.max_pending_events)
        self.sites = SiteRegistry(s, self.sink.reader)  # sites table + file, in memory; refreshed on change
        self.sites.reload()
        self.edge = Edge(edge_chain(s, self.salts, self.sites), self.bus)
        self.worker = Worker(self.bus, consumer_chain(s), self.sink)
        self.worker.warm_up()
        metrics.REGISTRY.register(metrics.ChainTimes([self.edge.chain, self.worker.chain]))
        log.info("strana: store %s (2xx after %s), bus %s, settings from %s", db_path, s.ingest.durability,
                 s.bus.kind, s.source)

    def connect(self):
        """A read connection that sees every event acknowledged so far (waits briefly for the spool loader)."""
        if hasattr(self.sink, "wait_loaded"):
            self.sink.wait_loaded(timeout=2.0)
        return self.sink.reader()

    async def start(self) -> None:
        await self.bus.start()
        self.tasks.append(asyncio.create_task(self.worker.run(), name="strana-worker"))
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
            self.worker.close()
            self.sites.close()
            self.sink.close()
        except BaseException:
            log.exception("strana: error while stopping")
            raise
        log.info("strana: drained and closed; %d events stored this run", self.worker.stored)


@get("/healthz", media_type=MediaType.JSON, sync_to_thread=False)
def healthz(runtime: Runtime) -> dict:
    return {"status": "ok", "pending": runtime.bus.pending()}


@get("/metrics", sync_to_thread=False)
def prometheus(runtime: Runtime) -> Response:
    metrics.pending_events.set(runtime.bus.pending())
    return Response(generate_latest(metrics.REGISTRY), media_type="text/plain; version=0.0.4")


class FrontDoor:
    """Routes the ingest paths straight to their sources; everything else to Litestar."""

    def __init__(self, routes: dict, fallback):
        self.routes = routes
        self.fallback = fallback

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            route = self.routes.get(scope["path"])
            if route is not None:
                return await route(scope, receive, send)
        return await self.fallback(scope, receive, send)


def create_app(settings: Settings | None = None) -> FrontDoor:
    settings = settings or load()
    logging.basicConfig(level=settings.server.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    runtime = Runtime(settings)
    runtime.open()
    auth = auth_wiring.Auth(settings, runtime.sink.reader, runtime.sites)  # people, keys, links (collector/auth/)
    auth.setup_link()
    if runtime.sites.open_mode:
        log.info("strana: open mode: hits for any site are accepted; a site is created on its first hit")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar):
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    web = Litestar(
        route_handlers=[healthz, prometheus, *REPORT_ROUTES, *auth_wiring.ROUTES],
        dependencies={
            "runtime": Provide(lambda: runtime, sync_to_thread=False),
            "connect": Provide(lambda: runtime.connect, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        lifespan=[lifespan, auth_wiring.lifespan(auth)],
    )
    # the site registry is the site gate (open/closed mode); per-site rate limit when configured
    limits = dataclasses.replace(Limits.from_settings(settings), sites=runtime.sites, site_rate=site_limiter(settings))
    trusted = parse_networks(settings.server.trusted_proxies)
    ing = settings.ingest
    routes = {
        "/api/event": EventSource(runtime.edge, limits, ing.max_body_bytes, trusted),
        "/p.gif": PixelSource(runtime.edge, limits, trusted),
        "/api/v1/batch": BatchSource(runtime.edge, limits, ing.max_batch_bytes, ing.max_batch_events, trusted,
                                     authorize=auth_wiring.BatchKeys(auth.directory, runtime.sites)),
    }
    routes = {**wrap_routes(routes, settings, trusted), **TrackerFiles(load_tracker_files()).routes()}
    app = FrontDoor(routes, auth_wiring.AuthGate(web, auth))
    app.runtime = runtime
    return app
