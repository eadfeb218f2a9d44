#!/bin/sh
# The install step every service image shares (services/Dockerfile, drift, retrain-trigger),
# run as root in /app once the sources are copied:
#   sh services/image-setup.sh PACKAGE [DIRECTORY...]
# PACKAGE is what pip installs, editable (".", ".[pipeline]"): the package stays in /app/src,
# so services_dir() (src/driftline/platform/services.py) resolves to /app/services. Then the
# non-root user 10001 the image runs as, owning /data and the DIRECTORYs made below it, so
# that empty named volumes mounted there inherit that owner.
set -eu
package=$1
shift
# shellcheck disable=SC2086 # EXTRA_PACKAGES is a list of requirements
pip install --no-cache-dir -c requirements.lock -e "$package" ${EXTRA_PACKAGES:-}
groupadd --gid 10001 driftline
useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data \
    --shell /usr/sbin/nologin driftline
mkdir -p /data "$@"
chown -R 10001:10001 /data
