"""The `strana` command: serve, worker, status, migrate, quarantine, export, sites, users, keys."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

from collector.settings import SettingsError, load


def _apply_overrides(args) -> None:
    """Command-line flags become STRANA_* variables, so every later settings.load() (the app's too) sees them."""
    for flag, var in (("host", "STRANA_SERVER__HOST"), ("port", "STRANA_SERVER__PORT"),
                      ("data_dir", "STRANA_SERVER__DATA_DIR"), ("role", "STRANA_SERVER__ROLE"),
                      ("partitions", "STRANA_WORKER__PARTITIONS")):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[var] = str(value)
    if getattr(args, "config", None):
        os.environ["STRANA_CONFIG"] = str(Path(args.config).resolve())


def _check_bus(settings, role: str) -> bool:
    """One clear line and a non-zero exit when the broker is missing or unreachable, not a traceback."""
    if role == "all" and settings.bus.kind == "memory":
        return True  # the embedded default: nothing to check, and no need to import the app here
    from collector.app import check_bus
    from collector.bus import BusError

    try:
        check_bus(settings, role)
    except BusError as exc:
        print(f"strana: {exc}", file=sys.stderr)
        return False
    return True


DAMAGED = ("strana: cannot start: the store {path} is damaged or unreadable:\n  {exc}\n"
           "Stop here rather than lose data. Restore the file (and its .wal, if any) from a backup, or move both "
           "away to start with an empty store (events still in {spool} are replayed into it). "
           "`duckdb {path}` shows what DuckDB itself says.")


def _check_store(path: Path) -> bool:
    """Open the DuckDB file once before serving (replaying and checkpointing its WAL): a damaged file is one
    clear message and exit code 1 here, not a traceback from the app's start-up."""
    if not path.exists():
        return True
    import duckdb

    try:
        con = duckdb.connect(str(path))
        try:
            con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except duckdb.IOException as exc:
        if "could not set lock" in str(exc).lower():  # another process holds it: not damage
            print(f"strana: cannot start: {path} is held by another process (is `strana serve` already running "
                  f"on it?): {exc}", file=sys.stderr, flush=True)
            return False
        print(DAMAGED.format(path=path, exc=exc, spool=path.parent / "spool"), file=sys.stderr, flush=True)
        return False
    except duckdb.Error as exc:
        print(DAMAGED.format(path=path, exc=exc, spool=path.parent / "spool"), file=sys.stderr, flush=True)
        return False
    return True


def _probe_lake(settings) -> bool:
    from collector.sinks.lake import Lake, LakeConfig, LakeError

    try:
        Lake(LakeConfig.from_settings(settings)).probe()
    except LakeError as exc:
        print(f"strana: cannot start: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def _apart(check, *args) -> bool:
    """Run a start-up check in a forked child and return its verdict. The server runs in this process once the
    checks pass; whatever a check imports or opens (DuckDB on an existing store: ~45 MB RSS, the app and its
    brokers' clients for a bus check) would otherwise stay in it for the server's whole life, opened twice."""
    pid = os.fork()  # no threads yet in this process: a plain fork is safe
    if pid == 0:
        code = 1
        try:
            code = 0 if check(*args) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def cmd_serve(args) -> int:
    settings = load()
    if not _apart(_check_bus, settings, settings.server.role):
        return 1
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["STRANA_SERVER__DATA_DIR"] = str(data_dir)
    if settings.sink.kind == "parquet":  # a wrong key or endpoint: say so here, not in a worker's traceback
        if not _apart(_probe_lake, settings):
            return 1
    elif settings.server.role == "all" and not _apart(_check_store, data_dir / "strana.duckdb"):
        return 1
    from collector.server import serve

    return serve(settings.server.host, settings.server.port, float(settings.server.read_timeout_seconds), data_dir)


def cmd_worker(args) -> int:
    from collector import worker_process
    from collector.app import WorkerRuntime
    from collector.bus import BusError

    settings = load()
    logging.basicConfig(level=settings.server.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if not _check_bus(settings, "worker"):
        return 1
    print(f"strana worker: {settings.bus.kind} → {settings.data_dir.resolve()}", file=sys.stderr, flush=True)
    try:
        return worker_process.run(WorkerRuntime(settings))
    except BusError as exc:
        print(f"strana worker: {exc}", file=sys.stderr)
        return 1


def cmd_status(args) -> int:
    """Each worker's status file (stored, partitions, positions, lag) and each ingest's in-flight count."""
    import urllib.request

    settings = load()
    report: dict = {"bus": settings.bus.kind, "workers": {}, "ingest": {}}
    for data_dir in args.data_dirs or [str(settings.data_dir)]:
        path = Path(data_dir) / "worker-status.json"
        report["workers"][data_dir] = json.loads(path.read_text()) if path.exists() else "no worker status here"
    for url in args.urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=5) as r:
                report["ingest"][url] = {"in_flight": json.loads(r.read())["pending"]}
        except OSError as exc:
            report["ingest"][url] = f"unreachable: {exc}"
    print(json.dumps(report, indent=2))
    return 0


def cmd_migrate(args) -> int:
    from collector.sinks.duckdb import DuckDBSink

    settings = load()
    path = settings.data_dir / "strana.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    import duckdb

    from collector import migrate

    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        print(f"strana migrate: cannot open {path}: {exc}\nIs `strana serve` running on it? Stop it first.",
              file=sys.stderr)
        return 1
    applied = migrate.apply(con)
    con.close()
    del DuckDBSink
    print("applied: " + ", ".join(applied) if applied else f"{path}: up to date")
    return 0


LOCKED = ("strana quarantine: cannot open {path}: {exc}\n"
          "Is `strana serve` running on it? DuckDB lets one process hold the file. Stop the server, or ask it:\n"
          "  curl -H 'Authorization: Bearer <[admin] token>' {url}/api/v1/quarantine\n"
          "  curl -X POST -H 'Authorization: Bearer <[admin] token>' {url}/api/v1/quarantine/replay "
          "-d '{{\"site\": \"...\"}}'")


def _locked(settings, path, exc) -> int:
    url = f"http://{settings.server.host}:{settings.server.port}"
    print(LOCKED.format(path=path, exc=exc, url=url), file=sys.stderr)
    return 1


def cmd_quarantine(args) -> int:
    import json

    import duckdb

    from collector import quarantine

    settings = load()
    path = settings.data_dir / "strana.duckdb"
    if not path.exists():
        print(f"strana quarantine: no store at {path}", file=sys.stderr)
        return 1
    if args.action == "replay":
        return _replay(settings, path, args)
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        return _locked(settings, path, exc)
    try:
        items = quarantine.select(con, site=args.site, reason=args.reason, item_id=args.id,
                                  pending=not args.all or args.action == "show")
        if args.action == "show":
            if not items:
                print(f"strana quarantine: no item {args.id or ''}", file=sys.stderr)
                return 1
            print(json.dumps([i.full() for i in items] if len(items) > 1 else items[0].full(), indent=2))
        elif args.json:
            print(json.dumps([i.full() for i in items], indent=2))
        else:
            for site, day, reason, n, waiting in quarantine.counts(con):
                print(f"# {day} {site} {reason}: {n} kept, {waiting} waiting for a replay")
            for i in items:
                s = i.summary()
                print(f"{s['id']}  {s['received_at'][:19]}  {s['site']}  {s['source']}  {s['reason']}  "
                      f"{s['detail'][:100]}" + (f"  (replayed {s['replayed_at'][:19]})" if s["replayed_at"] else ""))
    finally:
        con.close()
    return 0


def _replay(settings, path, args) -> int:
    import asyncio
    import json

    import duckdb

    from collector import quarantine
    from collector.app import Runtime

    runtime = Runtime(settings)
    try:
        runtime.open()
    except duckdb.IOException as exc:
        return _locked(settings, path, exc)
    crash_after = int(os.environ.get("STRANA_TEST_REPLAY_CRASH_AFTER", "0"))  # tests: die midway, on purpose

    async def run() -> list[dict]:
        await runtime.start(jobs=False)
        results = []
        try:
            items = quarantine.select(runtime.connect(), site=args.site, reason=args.reason, item_id=args.id)
            for n, item in enumerate(items, 1):
                results.append(await runtime.replayer.one(item))
                print(json.dumps(results[-1]), flush=True)
                if crash_after and n >= crash_after:
                    os._exit(70)
        finally:
            await runtime.stop()
        return results

    results = asyncio.run(run())
    stored = sum(r["result"] == "stored" for r in results)
    failing = sum(r["result"] == "still failing" for r in results)
    print(f"replayed {len(results)} item(s): {stored} stored, {len(results) - stored - failing} already stored, "
          f"{failing} still failing", file=sys.stderr)
    return 0 if not failing else 3


def cmd_export(args) -> int:
    from collector.export import ExportError, export
    from collector.sinks.lake import LakeError

    settings = load()
    try:
        start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    except ValueError as exc:
        print(f"strana export: --from/--to must be dates like 2026-11-23: {exc}", file=sys.stderr)
        return 2
    try:
        rows = export(settings, args.site, start, end, args.format, args.output)
    except (ExportError, LakeError) as exc:
        print(f"strana export: {exc}", file=sys.stderr)
        return 1
    print(f"strana export: {rows:,} events of {args.site} ({start} to {end}) written to {args.output}",
          file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strana", description="Privacy-first web analytics.")
    parser.add_argument("--config", help="path to strana.toml (default: $STRANA_CONFIG or ./strana.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the collector and dashboard")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", dest="data_dir")
    serve.add_argument("--role", choices=["all", "ingest"])
    serve.set_defaults(func=cmd_serve)

    work = sub.add_parser("worker", help="consume Kafka/NATS into the store (scale-out)")
    work.add_argument("--data-dir", dest="data_dir")
    work.add_argument("--partitions", help="partitions this worker owns, e.g. 0-3 (default: [worker] partitions)")
    work.set_defaults(func=cmd_worker)

    status = sub.add_parser("status", help="consumer lag, positions and in-flight counts")
    status.add_argument("--data-dir", dest="data_dirs", action="append", help="a worker's data dir (repeatable)")
    status.add_argument("--url", dest="urls", action="append", default=[], help="an ingest server (repeatable)")
    status.set_defaults(func=cmd_status)

    mig = sub.add_parser("migrate", help="apply pending store migrations")
    mig.add_argument("--data-dir", dest="data_dir")
    mig.set_defaults(func=cmd_migrate)

    q = sub.add_parser("quarantine", help="list, show or replay events kept in quarantine (server stopped)")
    q.add_argument("action", choices=["list", "show", "replay"])
    q.add_argument("--data-dir", dest="data_dir")
    q.add_argument("--site")
    q.add_argument("--reason", choices=["schema", "mapping"])
    q.add_argument("--id", help="one item, by its id")
    q.add_argument("--all", action="store_true", help="list: replayed items too")
    q.add_argument("--json", action="store_true", help="list: everything, payloads included, as JSON (export)")
    q.set_defaults(func=cmd_quarantine)

    exp = sub.add_parser("export", help="write a site's raw events for a range of days to Parquet or CSV")
    exp.add_argument("--site", required=True)
    exp.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    exp.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD (UTC), included")
    exp.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    exp.add_argument("--output", required=True, help="file to write")
    exp.add_argument("--data-dir", dest="data_dir")
    exp.set_defaults(func=cmd_export)

    from collector.auth.cli_admin import register

    register(sub)  # strana sites | users | keys (collector/auth/cli_admin.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _apply_overrides(args)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"strana: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
