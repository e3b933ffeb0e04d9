#!/usr/bin/env bash
# Starts Backroll on its embedded defaults: SQLite in ./data, in-process jobs and
# scheduler, the bundled OpenID provider. Installs the npm packages and builds on
# first use. Prints where to open it and where the admin password is.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/runtime.sh
backroll_ensure_deps
npm run build --silent
export BACKROLL_DATA_DIR="${BACKROLL_DATA_DIR:-$(pwd)/data}"
exec node server/bin/backroll.js start "$@"
