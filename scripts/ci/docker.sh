#!/usr/bin/env bash
# Docker for the compose test (server/test/deploy/compose.lab.test.ts), as root, on a machine
# that can reach no container registry: installs Debian's docker.io, docker-compose and
# debootstrap if missing, starts dockerd (no systemd), builds the local debian:bookworm-slim
# base (deploy/docker/build-base.sh), then Backroll's image and the CI stand-ins for PostgreSQL,
# Redis and MariaDB (deploy/compose.ci.yaml, compose.mariadb.ci.yaml). Idempotent; a warm run
# only checks the build cache.
#
# scripts/test-all.sh runs it in the background while the main test project runs and records
#   .test-results/docker-build.log     its output
#   .test-results/docker-build.status  its exit code, written when it ends
# which the compose test waits for.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
log() { printf '[docker %s] %s\n' "$(date +%T)" "$*"; }
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then log "needs root"; exit 1; fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/bin/docker-compose ] || command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's client speaks to Debian's daemon; another `docker` earlier on PATH may lack the
# classic builder or the compose plugin.
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker)
if ! "$docker" info >/dev/null 2>&1; then
  log "starting dockerd"
  # What dockerd changes on the machine, as it was: scripts/ci/docker-cleanup.sh puts it back.
  state=/var/lib/backroll-ci/docker
  mkdir -p "$state"
  iptables-save > "$state/iptables.before" 2>/dev/null || true
  sysctl -n net.ipv4.ip_forward > "$state/ip_forward.before" 2>/dev/null || true
  touch "$state/started-by-ci"
  mkdir -p /var/log
  # Its own session: it outlives this script (test-all runs it in the background).
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do "$docker" info >/dev/null 2>&1 && break; sleep 1; done
  "$docker" info >/dev/null 2>&1 || { log "dockerd did not start:"; tail -n 30 /var/log/dockerd.log; exit 1; }
fi
log "dockerd $("$docker" version --format '{{.Server.Version}}')"

BACKROLL_BASE_IMAGE=debian:bookworm-slim bash deploy/docker/build-base.sh
log "base image ready ($(( $(date +%s) - started )) s)"

# CA certificates of a TLS-intercepting egress proxy, trusted by the build stages only.
rm -rf .build-ca
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p .build-ca && cp /usr/local/share/ca-certificates/*.crt .build-ca/
fi

export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
version=$(node -p 'require("./server/package.json").version' 2>/dev/null || sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' server/package.json | head -n1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
t=$(date +%s)
"$docker" build -f deploy/docker/Dockerfile -t "${BACKROLL_IMAGE:-backroll:local}" \
  --build-arg BACKROLL_VERSION="$version" --build-arg BACKROLL_REVISION="$revision" .
log "image ${BACKROLL_IMAGE:-backroll:local} ready ($(( $(date +%s) - t )) s, $("$docker" image inspect -f '{{.Size}}' "${BACKROLL_IMAGE:-backroll:local}" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
t=$(date +%s)
"$docker" build -f deploy/docker/ci/postgres.Dockerfile -t backroll-ci/postgres:15 deploy/docker/ci
"$docker" build -f deploy/docker/ci/redis.Dockerfile -t backroll-ci/redis:7 deploy/docker/ci
"$docker" build -f deploy/docker/ci/mariadb.Dockerfile -t backroll-ci/mariadb:10.11 deploy/docker/ci
log "CI images backroll-ci/postgres:15, backroll-ci/redis:7, backroll-ci/mariadb:10.11 ready ($(( $(date +%s) - t )) s)"
rm -rf .build-ca
log "done in $(( $(date +%s) - started )) s"
