#!/usr/bin/env bash
# Starts Backroll on its embedded defaults: SQLite in ./data, in-process jobs and
# scheduler, the bundled OpenID provider. Installs the npm packages and builds on
# first use. Prints where to open it and where the admin password is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
export BACKROLL_DATA_DIR="${BACKROLL_DATA_DIR:-$(pwd)/data}"
exec node server/bin/backroll.js start "$@"
