#!/usr/bin/env bash
# Creates .venv and installs Driftline with its pinned dependencies. Safe to run again:
# it does nothing when pyproject.toml and the lock file have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.driftline-installed
want=$(cat pyproject.toml requirements.lock "$0" scripts/write-bytecode.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

echo "driftline: setting up $VENV (first run takes a minute or two)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
"$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" \
  -c requirements.lock -e ".[dev,pipeline,bench]"
# Bytecode is written on first import, also where PYTHONDONTWRITEBYTECODE=1 is set (as on some
# CI machines): every Driftline process (services, serving, each pipeline step) starts a fresh
# interpreter, which would otherwise compile MLflow, Evidently and the rest from source each
# time. Compiling all 38,000 files up front instead took about 3 minutes of set-up on a 2-core
# machine, for files the processes mostly never import (Plotly's alone are 15,000).
bash scripts/write-bytecode.sh "$VENV"
echo "$want" > "$STAMP"
echo "driftline: environment ready" >&2
