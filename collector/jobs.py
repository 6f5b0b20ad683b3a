"""Scheduled work, as one table of (name, trigger, function): APScheduler runs it in the server process."""

from __future__ import annotations

import asyncio
import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from collector import metrics
from collector.cpu_priority import lowered
from collector.heap import IdleRelease
from collector.retention import apply_retention, utc_today
from collector.rollups import build_pending
from collector.rollups_today import refresh_pending

log = logging.getLogger("strana.jobs")


def rotate_salts(salts) -> None:
    deleted = salts.rotate(int(time.time() // 86400))
    log.info("salt rotation: today's salt ready, %d old salt(s) deleted", deleted)


def compact_lake(runtime) -> None:
    from collector.compaction import compact  # the lake's modules load with the lake, not in every server

    compact(runtime.sink.lake, utc_today(), grace=runtime.settings.sink.compact_grace_seconds)
    runtime.sink.lake_reader.invalidate()


def site_zone(runtime, site: str) -> str:
    """The site's zone as the stats API reads it ([sites."x"] timezone), so rollup days are its local days."""
    sites = getattr(runtime.settings, "values", {}).get("sites", {})
    per_site = sites.get(site, {}) if isinstance(sites, dict) else {}
    return (per_site.get("timezone") if isinstance(per_site, dict) else None) or "UTC"


def build_rollups(runtime) -> None:
    con = runtime.sink.reader()
    try:
        build_pending(con, lambda site: site_zone(runtime, site))
    finally:
        con.close()


def move_today_rollups(runtime) -> None:
    con = runtime.sink.reader()
    try:
        for how, n in refresh_pending(con, lambda site: site_zone(runtime, site)).items():
            metrics.today_rollups_total.labels(how).inc(n)
    finally:
        con.close()


def job_table(runtime) -> list[tuple[str, object, callable, tuple]]:
    jobs = [
        # a new random salt each UTC day; the one before yesterday's is deleted for good
        ("rotate_salts", CronTrigger(hour=0, minute=0, second=1, timezone="UTC"), rotate_salts, (runtime.salts,)),
        # after 5-10 minutes without an accepted or stored event: the heap's free pages and mapped file pages
        # given back
        ("idle_release", IntervalTrigger(minutes=5), IdleRelease(), ()),
    ]
    if runtime.sink is None:  # an ingest-only process (`--role ingest`): the store's jobs run where the store is
        return jobs
    # events past their site's retention_days (sites table, then [sites], then [sink]): lake partitions or
    # DuckDB rows deleted; idempotent
    jobs.append(("retention", CronTrigger(hour=0, minute=20, timezone="UTC"), apply_retention, (runtime,)))
    if hasattr(runtime.sink, "lake"):
        # finished days: small files merged into one; inputs deleted a grace period later (resumable)
        jobs.append(("compaction", CronTrigger(minute=5, timezone="UTC"), compact_lake, (runtime,)))
    else:
        # daily rollups (migrations 007-008) of finished site-days in each site's zone (days of an older rollup
        # version again), the last 2 rebuilt for late events; the stats API reads them for unfiltered whole-day
        # cards, today computed on the fly (reports/rollup.py); resumable
        jobs.append(("rollups", CronTrigger(minute=15, timezone="UTC"), build_rollups, (runtime,)))
        every = getattr(runtime.settings, "values", {}).get("sink", {}).get("today_rollups_seconds", 10)
        if every > 0:
            # the rollups of today (and yesterday until the job above has it) moved on to the events stored
            # since the last run, so today's cards read seconds of events, not the day (collector/rollups_today.py)
            jobs.append(("today_rollups", IntervalTrigger(seconds=every), move_today_rollups, (runtime,)))
    return jobs


def in_thread(func, running: set):
    """func as a coroutine job that runs it in a lowered thread. The scheduler's shutdown cancels a job
    without waiting for its thread (and logs the cancel as the job's error); here the thread is left in
    `running` instead, for `stop_jobs` to end."""
    async def job(*args):
        thread = asyncio.get_running_loop().run_in_executor(None, lowered(func), *args)
        running.add(thread)
        thread.add_done_callback(running.discard)
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:  # the scheduler's shutdown; stop_jobs has the thread
            pass

    return job


def start_scheduler(runtime) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for name, trigger, func, args in job_table(runtime):
        scheduler.add_job(in_thread(func, runtime.jobs_running), trigger, args=args, id=name, name=name,
                          misfire_grace_time=3600, coalesce=True)
    scheduler.start()
    return scheduler


async def stop_jobs(running: set, timeout: float = 60.0) -> None:
    """On shutdown, once the store is closed (which interrupts what a job still runs on it: an uncommitted step
    rolls back; every job is resumable): wait for the jobs' threads. What they raised then is the shutdown's
    doing, said in one line, not a traceback."""
    threads = list(running)
    if not threads:
        return
    done, pending = await asyncio.wait(threads, timeout=timeout)
    stopped = sum(1 for t in done if t.exception() is not None)
    log.info("jobs: %d running at shutdown; %d stopped mid-run (they resume on the next start), %d still running",
             len(threads), stopped, len(pending))
