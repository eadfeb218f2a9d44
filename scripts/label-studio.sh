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

# A database with every migration applied, which driftline.labels.server copies into each new
# data directory: migrating a fresh one takes a minute or more of CPU at every first start.
MIGRATED=$VENV/migrated-database.sqlite3

# One install at a time: make test starts this in the background while tests may call it too.
mkdir -p "$VENV"
exec 9>"$VENV/.install-lock"
flock 9

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$LABEL_STUDIO_VERSION" ] || [ ! -f "$MIGRATED" ]; then
  echo "driftline: installing label-studio $LABEL_STUDIO_VERSION into $VENV (a few minutes once)" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
  "$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" \
    "label-studio==$LABEL_STUDIO_VERSION"
  bash scripts/write-bytecode.sh "$VENV"  # Django's and Label Studio's, once: not at every start
  # The migrated database depends only on what is installed: it is kept once per machine and
  # set of packages (the user's cache directory), so a second clone does not migrate again.
  installed=$("$VENV/bin/python" -m uv pip freeze --quiet --python "$VENV/bin/python" | sha256sum | cut -c1-16)
  cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/driftline
  kept=$cache_dir/label-studio-$LABEL_STUDIO_VERSION-$installed.sqlite3
  if [ ! -f "$kept" ]; then
    # `label-studio version` applies the migrations to the data directory's database and exits.
    empty=$(mktemp -d)
    LABEL_STUDIO_BASE_DATA_DIR=$empty LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
      "$VENV/bin/label-studio" version --data-dir "$empty" >/dev/null
    mkdir -p "$cache_dir"
    mv "$empty/label_studio.sqlite3" "$kept.$$"  # then renamed: another clone may read it
    mv "$kept.$$" "$kept"
    rm -rf "$empty"
  fi
  cp "$kept" "$MIGRATED"
  echo "$LABEL_STUDIO_VERSION" > "$STAMP"
fi
echo "$PWD/$VENV/bin/label-studio"
