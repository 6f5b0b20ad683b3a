"""Settings: defaults, file, environment — and every setting documented in the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.settings import SETTINGS, SettingsError, load

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("section,key,default,help", SETTINGS)
def test_every_setting_is_in_the_readme(section, key, default, help):
    assert f"| `{section}` | `{key}` | `{json.dumps(default)}` |" in README


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load(environ={})
    assert s.server.port == 8000 and s.source == "defaults"


def test_file_then_environment(tmp_path):
    cfg = tmp_path / "strana.toml"
    cfg.write_text('[server]\nport = 9001\n[ingest]\nsites = ["a.com"]\n')
    s = load(cfg, environ={"STRANA_INGEST__SITES": "b.com, c.com", "STRANA_INGEST__COMMIT_ROWS": "10"})
    assert s.server.port == 9001
    assert s.ingest.sites == ["b.com", "c.com"]
    assert s.ingest.commit_rows == 10


@pytest.mark.parametrize("environ,needle", [
    ({"STRANA_SERVER__PORT": "eighty"}, "STRANA_SERVER__PORT"),
    ({"STRANA_PRIVACY__DNT_POLICY": "maybe"}, "dnt_policy"),
    ({"STRANA_BUS__KIND": "redis"}, "[bus] kind"),
])
def test_bad_values_are_named(environ, needle):
    with pytest.raises(SettingsError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load(environ=environ)
