"""Scheduled work, as one table of (name, trigger, function): APScheduler runs it in the server process."""

from __future__ import annotations

import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from collector.retention import apply_retention

log = logging.getLogger("strana.jobs")


def rotate_salts(salts) -> None:
    deleted = salts.rotate(int(time.time() // 86400))
    log.info("salt rotation: today's salt ready, %d old salt(s) deleted", deleted)


def job_table(runtime) -> list[tuple[str, object, callable, tuple]]:
    return [
        # a new random salt each UTC day; the one before yesterday's is deleted for good
        ("rotate_salts", CronTrigger(hour=0, minute=0, second=1, timezone="UTC"), rotate_salts, (runtime.salts,)),
        # events older than a site's retention_days are deleted (collector/retention.py)
        ("retention", CronTrigger(hour=3, minute=17, timezone="UTC"), apply_retention, (runtime,)),
    ]


def start_scheduler(runtime) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for name, trigger, func, args in job_table(runtime):
        scheduler.add_job(func, trigger, args=args, id=name, name=name, misfire_grace_time=3600, coalesce=True)
    scheduler.start()
    return scheduler
