#!/usr/bin/env bash
# Installs Label Studio into its own virtualenv (.labelstudio-venv): its pins are its own and must
# never enter Driftline's lock. Safe to run again: it does nothing once the pinned version is there.
# Prints the path of the label-studio executable.
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL_STUDIO_VERSION=${LABEL_STUDIO_VERSION:-1.23.2}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${LABEL_STUDIO_VENV:-.labelstudio-venv}
STAMP=$VENV/.label-studio-installed

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$LABEL_STUDIO_VERSION" ]; then
  echo "driftline: installing label-studio $LABEL_STUDIO_VERSION into $VENV (a few minutes once)" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
  "$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" \
    "label-studio==$LABEL_STUDIO_VERSION"
  echo "$LABEL_STUDIO_VERSION" > "$STAMP"
fi
echo "$PWD/$VENV/bin/label-studio"
