#!/usr/bin/env bash
# Installs everything the test suite needs from the project's own files, then runs it.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check uv
# Compiled at install time: each of the ~150 servers and workers the tests start would otherwise compile
# every module from source again (~1 s of CPU each) wherever PYTHONDONTWRITEBYTECODE is set.
UV=".venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python"
$UV -e '.[dev]'
if [ -f trackers/python/pyproject.toml ]; then
  $UV -e trackers/python
fi

# Headless Chromium for the browser tests (Debian's package; Playwright never downloads one).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: run 'sudo apt-get install -y chromium' (browser tests will be skipped)" >&2
  fi
fi

# The JS tracker's build tool, pinned by its lockfile.
if [ -f trackers/js/package-lock.json ]; then
  (cd trackers/js && npm ci --silent --no-audit --no-fund)
fi

# The dashboard tests' axe-core (accessibility check), pinned by its lockfile.
if [ -f reports/frontend/package-lock.json ]; then
  (cd reports/frontend && npm ci --silent --no-audit --no-fund)
fi

# The project's own modules (an editable install) are cached on first import, for the same reason.
unset PYTHONDONTWRITEBYTECODE

# Tests start real servers and mostly wait on them: three workers keep the suite well under 10 minutes.
exec .venv/bin/python -m pytest -n 3 --dist loadfile "$@"
