"""The SDK installs from its folder into a fresh virtual environment and imports only the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parent.parent / "trackers" / "python"

CHECK = """
import json, sys
before = set(sys.modules)  # the interpreter's own start-up (site hooks such as setuptools' _distutils_hack)
import strana_sdk, strana_sdk.middleware, strana_sdk.django, strana_sdk.aio
from importlib import resources
new = {m.split(".")[0] for m in set(sys.modules) - before}
outside = sorted(new - set(sys.stdlib_module_names) - {"strana_sdk"})
print(json.dumps({"outside": outside, "version": strana_sdk.__version__,
                  "typed": resources.files("strana_sdk").joinpath("py.typed").is_file(),
                  "file": strana_sdk.__file__}))
"""


def test_installs_into_a_fresh_venv_with_no_dependencies(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # pip builds the wheel in an isolated environment (hatchling comes from PyPI). Dependencies are allowed to
    # install, so that `pip list` below shows there are none; the import check shows none are needed.
    built = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", str(SDK)],
                           capture_output=True, text=True, timeout=300)
    if built.returncode and ("NewConnectionError" in built.stderr or "No matching distribution" in built.stderr):
        pytest.skip(f"could not fetch the build backend from PyPI: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                            check=True).stdout
    assert {p["name"] for p in json.loads(listed)} <= {"pip", "setuptools", "strana-sdk", "strana_sdk"}
    out = subprocess.run([python, "-I", "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["outside"] == [], f"non-stdlib modules imported: {found['outside']}"
    assert found["typed"] and found["version"]
    assert str(env_dir) in found["file"] and sys.prefix not in found["file"]
