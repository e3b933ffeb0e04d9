#!/usr/bin/env bash
# First start: a fresh data dir, the root password, the database and its user (from any
# address); the server then runs in the foreground (as the official image does).
set -euo pipefail
datadir=/var/lib/mysql
sock=/run/mysqld/mysqld.sock
sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }
if [ ! -d "$datadir/mysql" ]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is required}"
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal --skip-test-db >/dev/null
  # Socket only while users are created: nothing reaches a half-made server.
  mariadbd --datadir="$datadir" --skip-networking --socket="$sock" &
  pid=$!
  for _ in $(seq 1 60); do mariadb-admin --socket="$sock" ping >/dev/null 2>&1 && break; sleep 1; done
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_quote "$MARIADB_ROOT_PASSWORD");"
    if [ -n "${MARIADB_DATABASE:-}" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"; fi
    if [ -n "${MARIADB_USER:-}" ]; then
      echo "CREATE USER $(sql_quote "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_quote "${MARIADB_PASSWORD:?MARIADB_PASSWORD is required}");"
      [ -z "${MARIADB_DATABASE:-}" ] || echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO $(sql_quote "$MARIADB_USER")@'%';"
    fi
  } | mariadb --socket="$sock" -uroot
  mariadb-admin --socket="$sock" -uroot --password="$MARIADB_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  touch "$datadir/.backroll-ci-initialized"
  echo "[mariadb-ci] initialised $datadir (database ${MARIADB_DATABASE:-none}, user ${MARIADB_USER:-none})"
fi
if [ "${1:-}" = mariadbd ]; then
  shift
  exec mariadbd --datadir="$datadir" --socket="$sock" --bind-address=0.0.0.0 "$@"
fi
exec "$@"
