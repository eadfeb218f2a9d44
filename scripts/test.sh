#!/usr/bin/env bash
# Runs ruff (lint and format), then the whole test suite with mypy on src/driftline beside it:
# unit tests, and integration tests against the embedded broker (or KAFKA_BOOTSTRAP_SERVERS),
# MariaDB at 127.0.0.1:3306, SQLite, Redis at 127.0.0.1:6379, Mosquitto at 127.0.0.1:1883 and a
# Label Studio the label tests start. Extra arguments go to pytest.
#
# The tests run on DRIFTLINE_TEST_WORKERS pytest-xdist workers (default 4: most tests wait on
# brokers, servers and child processes more than they compute, so 4 keep 2 cores busy), each
# test module on one worker (--dist loadfile: a module's fixtures, such as its Label Studio,
# trained model or the two demo runs, start once). DRIFTLINE_TEST_WORKERS=1 runs them in this
# process, one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."

# What does not need .venv is set up meanwhile, in two background chains: the machine's
# servers and tools one after the other (several may call apt, which takes one lock), and
# Label Studio into its own virtualenv. ensure-mariadb.sh asks with .venv's SQLAlchemy: later.
# The tests start once the servers and tools are there, Label Studio's install still going.
log_dir=$(mktemp -d)
# On an early exit (a lint finding) the background steps still finish: no half-done apt install.
trap 'wait; rm -rf "$log_dir"' EXIT
(
  set -e
  bash scripts/ensure-redis.sh
  bash scripts/ensure-mosquitto.sh
  bash scripts/chromium.sh   # the one headless-browser test
  bash scripts/ops-tools.sh  # promtool, amtool, prometheus, actionlint
) >"$log_dir/tools.log" 2>&1 &
tools=$!
bash scripts/label-studio.sh >"$log_dir/label-studio.log" 2>&1 &
label_studio=$!
finish() {  # finish PID NAME: wait for a background set-up step; its output if it failed
  if ! wait "$1"; then
    echo "driftline: $2 failed:" >&2
    cat "$log_dir/$2.log" >&2
    exit 1
  fi
}

bash scripts/bootstrap.sh
# Lint and format first: a finding fails the run before any test starts. mypy takes about a
# minute of CPU on a fresh clone (no cache): it checks types beside the tests, and a finding
# of its fails the run when they are done, whatever they gave.
.venv/bin/ruff check src services serving tests bench
.venv/bin/ruff format --check src services serving tests bench
.venv/bin/mypy >"$log_dir/mypy.log" 2>&1 &  # src/driftline: pyproject.toml [tool.mypy]
mypy=$!
bash scripts/ensure-mariadb.sh   # asks with .venv's SQLAlchemy: after bootstrap
finish "$tools" tools
# Label Studio's install (about 70 s on a fresh clone) goes on beside the first tests: the tests
# that need it wait for it (tests/label_studio.py: the install's lock), the others need not.

workers=${DRIFTLINE_TEST_WORKERS:-4}
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
fi
status=0
.venv/bin/python -m pytest "${parallel[@]}" "$@" || status=$?
finish "$label_studio" label-studio
finish "$mypy" mypy
echo "mypy: $(tail -n 1 "$log_dir/mypy.log")"
exit "$status"
