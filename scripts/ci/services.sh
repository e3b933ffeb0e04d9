#!/usr/bin/env bash
# Makes sure the database and cache services the integration tests use are
# installed and answering on loopback: PostgreSQL (trust, database "test"),
# MariaDB (root without password, database "test") and Redis. Starts any that
# are down without systemd (CI machines have none). Run as root.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

need_pkgs=()
command -v pg_ctlcluster >/dev/null || need_pkgs+=(postgresql)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v psql >/dev/null || need_pkgs+=(postgresql-client)
# systemd-analyze lints deploy/systemd (no running systemd is needed).
command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
# nginx -t / caddy validate check deploy/proxy; test/deploy/proxy.test.ts runs its own nginx on free ports
# (the packages' services are not started: no systemd, policy-rc.d).
[ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)
command -v caddy >/dev/null || need_pkgs+=(caddy)
# The console's end-to-end tests drive Debian's chromium with playwright-core (never a downloaded browser).
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 1
  done
  log "$name did not come up"; return 1
}

# PostgreSQL
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
fi
wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  # A fresh install: allow trust on loopback (test machines only) and create the database.
  hba=$(su postgres -c "psql -tAc 'show hba_file'")
  if ! grep -q 'backroll-ci' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # backroll-ci\nhost all all ::1/128 trust # backroll-ci' "$hba"
    su postgres -c "psql -qc 'select pg_reload_conf()'" >/dev/null
  fi
  su postgres -c "createdb test" 2>/dev/null || true
fi

# MariaDB
if ! mysqladmin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || true
fi
wait_for MariaDB mysqladmin -h 127.0.0.1 -uroot ping
mysql -h 127.0.0.1 -uroot -e 'create database if not exists test' >/dev/null 2>&1 ||
  mysql -uroot -e "create database if not exists test; alter user 'root'@'localhost' identified via unix_socket or mysql_native_password using password('');" || true

# Redis
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for Redis redis-cli -h 127.0.0.1 ping
