"""The tracker's committed build: within its size budgets, and exactly what src/ builds to.

The collector serves trackers/js/dist/*.js as they are committed, so these two tests keep them honest:
a change to src/ without `npm run build` (or a build that grew past the budget) fails here.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent.parent / "trackers" / "js"
DIST = JS / "dist"
CORE_BUDGET = 800  # gzipped bytes: pageviews, SPA, custom events, props, revenue, opt-out
FULL_BUDGET = 1600  # gzipped bytes: the core plus every extension (and so any variant)


def gzipped(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def test_dist_sizes_are_within_budget():
    files = sorted(DIST.glob("*.js"))
    assert {"strana.js", "strana.full.js"} <= {f.name for f in files}
    assert gzipped(DIST / "strana.js") <= CORE_BUDGET, f"core tracker is {gzipped(DIST / 'strana.js')} B gzipped"
    for path in files:
        assert gzipped(path) <= FULL_BUDGET, f"{path.name} is {gzipped(path)} B gzipped"


@pytest.mark.skipif(not (JS / "node_modules" / "esbuild").is_dir(),
                    reason="trackers/js/node_modules is absent: run `npm ci` in trackers/js")
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dist_is_what_src_builds(tmp_path):
    subprocess.run(["node", "build.mjs", str(tmp_path)], cwd=JS, check=True, capture_output=True, timeout=60)
    built = {p.name: p.read_bytes() for p in tmp_path.glob("*.js")}
    committed = {p.name: p.read_bytes() for p in DIST.glob("*.js")}
    assert built.keys() == committed.keys()
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"dist/ is stale ({', '.join(stale)}): run `npm run build` in trackers/js and commit dist/"
