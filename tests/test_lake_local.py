"""The lake in a local folder: `strana serve` on it, `strana export` from both sinks, and the README's snippets."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import subprocess

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from conftest import ROOT, STRANA
from lake_support import FIREFOX, hits

from collector.events import SCHEMA
from collector.sinks.lake import Lake, LakeConfig
from collector.sinks.parquet import ParquetSink

UA = {"user-agent": FIREFOX}
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


def post_events(server, n: int) -> None:
    with server.client() as c:
        for i in range(n):
            r = c.post("/api/event", json={"n": "pageview", "u": f"https://example.com/{i}", "d": "example.com",
                                           "p": {"i": str(i)}}, headers=UA)
            assert r.status_code == 202


def export(data_dir, fmt: str, output, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*STRANA, "export", "--site", "example.com", "--from", TODAY, "--to", TODAY,
                           "--format", fmt, "--output", str(output), "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


def test_serve_and_export_on_a_local_lake(make_server, tmp_path):
    env = {"STRANA_SINK__KIND": "parquet"}
    server = make_server(env=env)
    post_events(server, 7)
    with server.client() as c:
        assert c.get("/api/v1/stats/aggregate", params={"site": "example.com"}).json()["results"]["events"] == 7
    lake = server.data_dir / "lake"
    files = list((lake / "events" / "site=example.com" / f"date={TODAY}").glob("*.parquet"))
    assert len(files) == 7 and all(pq.read_schema(f) == SCHEMA for f in files)
    assert not list(lake.rglob("*.tmp"))  # temporary names never stay behind

    # the lake exports while the server runs
    import os

    full_env = {**os.environ, **env}
    out = tmp_path / "out.parquet"
    proc = export(server.data_dir, "parquet", out, full_env)
    assert proc.returncode == 0, proc.stderr
    assert "7/7 events" in proc.stderr and "7 events of example.com" in proc.stderr
    table = pq.read_table(out)
    assert table.schema == SCHEMA and table.num_rows == 7
    proc = export(server.data_dir, "csv", tmp_path / "out.csv", full_env)
    assert proc.returncode == 0, proc.stderr
    rows = pacsv.read_csv(tmp_path / "out.csv")
    assert rows.num_rows == 7 and rows.column_names == SCHEMA.names
    assert sorted(rows["props"].to_pylist())[0] == '{"i":"0"}'


def test_export_from_duckdb_says_when_the_server_holds_the_file(server, tmp_path):
    post_events(server, 3)
    proc = export(server.data_dir, "csv", tmp_path / "out.csv")
    assert proc.returncode == 1
    assert "strana serve" in proc.stderr and "parquet" in proc.stderr and "Stop the server" in proc.stderr
    assert not (tmp_path / "out.csv").exists()
    server.stop()
    proc = export(server.data_dir, "parquet", tmp_path / "out.parquet")
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema == SCHEMA and table.num_rows == 3
    assert sorted(table["pathname"].to_pylist()) == ["/0", "/1", "/2"]


def readme_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Event lake", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_lake_snippets_run_as_written(tmp_path, monkeypatch):
    snippets = readme_snippets()
    assert len(snippets) == 2 and all(len(s.strip().splitlines()) == 3 for s in snippets)
    sink = ParquetSink(Lake(LakeConfig(path=str(tmp_path / "data" / "lake"))))
    day = dt.date(2026, 11, 20)
    sink.write(hits("example.com", day, 4), {})
    sink.write(hits("example.com", day, 2, name="signup"), {})
    sink.write(hits("example.com", day + dt.timedelta(days=1), 3), {})
    monkeypatch.chdir(tmp_path)
    for snippet in snippets:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(snippet, "README.md", "exec"), {})
        text = out.getvalue()
        assert re.search(r"2026-11-20\D+4\b", text), text
        assert re.search(r"2026-11-21\D+3\b", text), text
