"""RELIABILITY.md names the test behind each promise: every `tests/<file>.py::<name>` it names must exist."""

from __future__ import annotations

import re

from conftest import ROOT


def test_every_test_named_in_reliability_md_exists():
    text = (ROOT / "RELIABILITY.md").read_text()
    named = set(re.findall(r"(tests/\w+\.py)(?:::(\w+))?", text))
    assert len(named) > 30
    missing = []
    for path, name in named:
        source = ROOT / path
        if not source.exists():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, missing
    assert "RELIABILITY.md" in (ROOT / "README.md").read_text()
