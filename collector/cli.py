"""The `strana` command: serve, migrate, sites, users, keys."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from collector.settings import SettingsError, load


def _apply_overrides(args) -> None:
    """Command-line flags become STRANA_* variables, so the server process (Granian's worker) sees them."""
    for flag, var in (("host", "STRANA_SERVER__HOST"), ("port", "STRANA_SERVER__PORT"),
                      ("data_dir", "STRANA_SERVER__DATA_DIR"), ("role", "STRANA_SERVER__ROLE")):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[var] = str(value)
    if getattr(args, "config", None):
        os.environ["STRANA_CONFIG"] = str(Path(args.config).resolve())


def cmd_serve(args) -> int:
    settings = load()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["STRANA_SERVER__DATA_DIR"] = str(data_dir)
    from granian import Granian
    from granian.constants import Interfaces, Loops

    print(f"strana: serving on http://{settings.server.host}:{settings.server.port} (data in {data_dir})",
          file=sys.stderr, flush=True)
    Granian(
        "collector.app:create_app", factory=True, address=settings.server.host, port=settings.server.port,
        interface=Interfaces.ASGI, loop=Loops.uvloop, workers=1, log_access=False,
        workers_kill_timeout=60,
    ).serve()
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

    mig = sub.add_parser("migrate", help="apply pending store migrations")
    mig.add_argument("--data-dir", dest="data_dir")
    mig.set_defaults(func=cmd_migrate)

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
