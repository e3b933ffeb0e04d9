#!/usr/bin/env bash
# Tear down the Backroll KVM lab built by up.sh.
# Usage: down.sh [--purge]
#   - destroys and undefines every domain of each lab host user's session
#     libvirt (including any a test defined), with snapshot/checkpoint metadata;
#   - removes the VM disks and templates (~/vms, ~/templates) and the PWNED
#     canary, so the next up.sh starts from pristine data;
#   - stops the lab sshd and removes the lab dir.
# Leaves system packages, the system libvirtd/virtlogd and the users.
# --purge also stops the users' session daemons and deletes the users.
# Idempotent: anything already gone is skipped.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

require_root
PURGE=0
case "${1:-}" in
'') ;;
--purge) PURGE=1 ;;
*) die "usage: $0 [--purge]" ;;
esac

for user in "${LAB_HOSTS[@]}"; do
  getent passwd "$user" >/dev/null || continue
  home=$(user_home "$user")
  case "$home" in /home/* | /var/* | /srv/*) ;; *) die "refusing: odd home '$home' for $user" ;; esac
  if command -v virsh >/dev/null; then
    # Domains by UUID: no name (hostile or otherwise) is ever parsed or quoted.
    uuids=$(hvirsh "$user" list --all --uuid 2>/dev/null) || uuids=""
    for uuid in $uuids; do
      hvirsh "$user" destroy --domain "$uuid" >/dev/null 2>&1 || true
      # Tests may leave snapshots/checkpoints: without these flags undefine
      # refuses the domain.
      hvirsh "$user" undefine --domain "$uuid" --snapshots-metadata \
        --checkpoints-metadata --managed-save --nvram >/dev/null 2>&1 ||
        hvirsh "$user" undefine --domain "$uuid" >/dev/null
      log "$user: removed domain $uuid"
    done
  fi
  rm -rf -- "$home/vms" "$home/templates" "$home/${LAB_CANARY:?}"
  # The lab client key dies with the lab dir: drop it (every generation, by
  # its comment) from authorized_keys. Keys added by others stay.
  ak="$home/.ssh/authorized_keys"
  if [ -f "$ak" ] && grep -q ' backroll-lab-client$' "$ak"; then
    grep -v ' backroll-lab-client$' "$ak" >"$ak.tmp" || true
    chown --reference="$ak" "$ak.tmp"
    chmod 0600 "$ak.tmp"
    mv "$ak.tmp" "$ak"
  fi

  if [ "$PURGE" -eq 1 ]; then
    # userdel refuses a user that still runs processes: the session libvirtd,
    # virtlogd (and anything a test left). End them by pid.
    for pid in $(ps -o pid= -u "$user" 2>/dev/null || true); do
      kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
      ps -o pid= -u "$user" >/dev/null 2>&1 || break
      sleep 0.1
    done
    for pid in $(ps -o pid= -u "$user" 2>/dev/null || true); do
      kill -9 "$pid" 2>/dev/null || true
    done
    userdel -r "$user" 2>/dev/null || userdel "$user"
    rm -rf -- "$home"
    log "deleted user $user"
  fi
done

if pid=$(lab_sshd_pid); then
  log "stopping lab sshd ($pid)"
  kill "$pid"
  for _ in $(seq 50); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
fi

if [ -d "$LAB_DIR" ]; then
  rm -rf -- "$LAB_DIR"
  log "removed $LAB_DIR"
fi
log "lab is down"
