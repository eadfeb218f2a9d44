#!/usr/bin/env bash
# Makes sure redis-server is installed (Debian): the serving tests start a Redis of their own
# with it (tests/redis_server.py), unless DRIFTLINE_TEST_REDIS_URL names one.
set -euo pipefail
[ -n "${DRIFTLINE_TEST_REDIS_URL:-}" ] && exit 0
command -v redis-server >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "driftline: installing redis-server (Debian)" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the package's init script must not start a server of its own here.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
