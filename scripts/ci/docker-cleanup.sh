#!/usr/bin/env bash
# Undoes what scripts/ci/docker.sh and dockerd changed on the machine, at the end of CI (as
# root): removes the compose test's leftovers, stops the dockerd that docker.sh started, deletes
# the bridges dockerd made (docker0, br-<network>), restores the iptables rules and
# net.ipv4.ip_forward saved before dockerd started. A dockerd that was running before docker.sh
# is left alone unless --force. Images stay (the next run's build cache).
#   --dry-run   print what would be done, change nothing
set -euo pipefail
log() { printf '[docker-cleanup] %s\n' "$*"; }
state=/var/lib/backroll-ci/docker
force=0 dry=0
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --dry-run) dry=1 ;;
    *) log "unknown option $a"; exit 2 ;;
  esac
done
# Every change goes through here.
run() { if [ "$dry" = 1 ]; then log "would run: $*"; else "$@"; fi; }
docker=/usr/bin/docker; [ -x "$docker" ] || docker=$(command -v docker || echo docker)

if [ "$(id -u)" != 0 ]; then log "needs root"; exit 1; fi
if [ ! -e "$state/started-by-ci" ] && [ "$force" != 1 ]; then
  log "dockerd was not started by scripts/ci/docker.sh: nothing to undo (--force to stop it anyway)"
  exit 0
fi

if "$docker" info >/dev/null 2>&1; then
  # Leftovers of interrupted compose tests (projects backrollci<tag>).
  for p in $("$docker" ps -a --format '{{.Label "com.docker.compose.project"}}' | grep '^backrollci' | sort -u); do
    log "removing compose project $p"
    ids=$("$docker" ps -aq --filter "label=com.docker.compose.project=$p")
    [ -z "$ids" ] || run "$docker" rm -f $ids
    vols=$("$docker" volume ls -q --filter "label=com.docker.compose.project=$p")
    [ -z "$vols" ] || run "$docker" volume rm $vols
    nets=$("$docker" network ls -q --filter "label=com.docker.compose.project=$p")
    [ -z "$nets" ] || run "$docker" network rm $nets
  done
fi

pid=$(cat /var/run/docker.pid 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  log "stopping dockerd ($pid)"
  run kill -TERM "$pid"
  if [ "$dry" = 0 ]; then
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { log "dockerd did not stop within 60 s"; exit 1; }
  fi
fi
# The containerd dockerd ran for itself ends with it; a leftover one is stopped by its pid file.
cpid=$(cat /var/run/docker/containerd/containerd.pid 2>/dev/null || true)
if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then run kill -TERM "$cpid" || true; fi

for link in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep -E '^(docker0|br-[0-9a-f]{12})$' || true); do
  log "deleting bridge $link"
  run ip link delete "$link" || true
done

if [ -s "$state/iptables.before" ]; then
  log "restoring iptables as before dockerd"
  # -w: dockerd or a stopping container may still hold the xtables lock. A failed restore (CI run 3 of
  # 2026-12-03) is not fatal: the loop below removes whatever dockerd left, rule by rule.
  run iptables-restore -w 10 "$state/iptables.before" || log "could not restore the iptables snapshot: removing dockerd's rules one by one"
fi
# Then (or without a snapshot) whatever remains of dockerd's rules, e.g. in a table the snapshot
# did not have: the jumps to its chains, the rules of its bridges, its chains.
for table in filter nat; do
  # (grep finds nothing when the snapshot restored everything: not an error under pipefail.)
  { iptables-save -t "$table" 2>/dev/null | grep -E -- '-j DOCKER|DOCKER-|docker0|br-[0-9a-f]{12}' || true; } | sed -n 's/^-A /-D /p' | while read -r rule; do
    eval "run iptables -t $table $rule" 2>/dev/null || true
  done
  for chain in DOCKER DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2; do
    iptables -t "$table" -S "$chain" >/dev/null 2>&1 || continue
    run iptables -t "$table" -F "$chain" && run iptables -t "$table" -X "$chain" || true
  done
done
if [ -s "$state/ip_forward.before" ]; then
  run sysctl -qw net.ipv4.ip_forward="$(cat "$state/ip_forward.before")"
else
  log "no record of net.ipv4.ip_forward before dockerd: left at $(sysctl -n net.ipv4.ip_forward)"
fi
run rm -rf "$state"
log "done: $(ip -o link show type bridge | grep -c -E 'docker0|br-' || true) docker bridges, ip_forward=$(sysctl -n net.ipv4.ip_forward), $(iptables-save | grep -c -E 'DOCKER|docker0|br-[0-9a-f]{12}' || true) docker iptables lines"
