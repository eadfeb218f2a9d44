#!/usr/bin/env bash
# write-bytecode.sh VENV: the virtualenv's interpreters write bytecode on first import even where
# PYTHONDONTWRITEBYTECODE=1, so each module is compiled once rather than at every process start.
# A .pth file's `import` line runs at every interpreter start (the site module's rule).
set -euo pipefail
site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo 'import sys; sys.dont_write_bytecode = False' >"$site/driftline-write-bytecode.pth"
