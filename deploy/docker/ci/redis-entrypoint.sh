#!/usr/bin/env bash
# As the official image: a bare `redis-server …` listens on every interface of the container
# with protected mode off (the compose network is the boundary; the port is not published).
set -euo pipefail
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --bind '* -::*' --protected-mode no --dir /data "$@"
fi
exec "$@"
