#!/usr/bin/env bash
# Creates .venv and installs Driftline with its pinned dependencies. Safe to run again:
# it does nothing when pyproject.toml and the lock file have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.driftline-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

echo "driftline: setting up $VENV (first run takes about a minute)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
"$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" \
  -c requirements.lock -e ".[dev,pipeline]"
echo "$want" > "$STAMP"
echo "driftline: environment ready" >&2
