#!/usr/bin/env bash
# Installs Debian's chromium, if missing, for the one headless-browser test
# (tests/integration/test_labels_browser.py draws a Label Studio task). Needs apt (root or sudo).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "driftline: installing chromium (Debian)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
