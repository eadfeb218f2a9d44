#!/usr/bin/env bash
# Makes sure the MariaDB the integration tests use answers at 127.0.0.1:3306 (starting the
# machine's server if it is installed but stopped). DRIFTLINE_TEST_MARIADB_URL overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
up() { .venv/bin/python - <<'PY' 2>/dev/null
import os, sqlalchemy as sa
url = os.environ.get("DRIFTLINE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306") + "/test"
with sa.create_engine(url).connect() as c:
    c.execute(sa.text("SELECT 1"))
PY
}
up && exit 0
if [ -x /usr/sbin/mariadbd ]; then
  echo "MariaDB is not answering; starting it" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do up && exit 0; sleep 0.5; done
fi
echo "MariaDB is not reachable at 127.0.0.1:3306 (set DRIFTLINE_TEST_MARIADB_URL)" >&2
exit 1
