#!/usr/bin/env bash
# The official image's `healthcheck.sh --connect --innodb_initialized`, for the CI stand-in:
# initialised (first-start users made) and the server answers on TCP (not the socket-only
# server of the first start). `ping` answers even without credentials.
set -euo pipefail
[ -f /var/lib/mysql/.backroll-ci-initialized ] || exit 1
exec mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 ping >/dev/null 2>&1
