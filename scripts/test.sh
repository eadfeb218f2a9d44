#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests against the embedded broker
# (or KAFKA_BOOTSTRAP_SERVERS), MariaDB at 127.0.0.1:3306, SQLite and Mosquitto at 127.0.0.1:1883.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/ops-tools.sh
bash scripts/ensure-mariadb.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-mosquitto.sh
exec .venv/bin/python -m pytest "$@"
