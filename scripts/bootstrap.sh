#!/usr/bin/env bash
# Creates .venv and installs Driftline with its pinned dependencies. Safe to run again:
# it does nothing when pyproject.toml and the lock file have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.driftline-installed
want=$(cat pyproject.toml requirements.lock "$0" | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

echo "driftline: setting up $VENV (first run takes a minute or two)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
# Bytecode compiled once here: every Driftline process (services, serving, each pipeline
# step) starts a fresh interpreter, and without .pyc files (e.g. PYTHONDONTWRITEBYTECODE=1)
# each one would compile MLflow, Evidently and the rest from source again: seconds per process.
"$VENV/bin/python" -m uv pip install --quiet --compile-bytecode --python "$VENV/bin/python" \
  -c requirements.lock -e ".[dev,pipeline,bench]"
echo "$want" > "$STAMP"
echo "driftline: environment ready" >&2
