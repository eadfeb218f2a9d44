#!/usr/bin/env bash
# Runs ruff (lint and format) and mypy on src/driftline, then the whole test suite: unit tests,
# and integration tests against the embedded broker (or KAFKA_BOOTSTRAP_SERVERS), MariaDB at
# 127.0.0.1:3306, SQLite, Redis at 127.0.0.1:6379, Mosquitto at 127.0.0.1:1883 and a Label
# Studio the label tests start. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Lint, format and types first: a finding fails the run before any test starts.
.venv/bin/ruff check src services serving tests bench
.venv/bin/ruff format --check src services serving tests bench
.venv/bin/mypy   # src/driftline, configured in pyproject.toml [tool.mypy]
bash scripts/ops-tools.sh
bash scripts/ensure-mariadb.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-mosquitto.sh
bash scripts/label-studio.sh >/dev/null   # Label Studio in its own .labelstudio-venv
bash scripts/chromium.sh                  # the one headless-browser test
exec .venv/bin/python -m pytest "$@"
