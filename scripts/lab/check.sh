#!/usr/bin/env bash
# Verify the Backroll KVM lab the way Backroll will use it: over SSH, with
# the lab client key and strict host key checking, as each host user.
#   - `virsh -c qemu:///session list --all` works and shows the expected VMs
#     in their expected states;
#   - SSH with an empty known_hosts is refused (host key checking is real);
#   - the PWNED canary does not exist in any host user's home.
# Exits non-zero on any failure (all checks run; failures are counted).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

require_root
FAILS=0
ok() { printf '  ok    %s\n' "$*"; }
fail() {
  printf '  FAIL  %s\n' "$*"
  FAILS=$((FAILS + 1))
}

CLIENTKEY="$LAB_DIR/client_ed25519"
HOSTKEY_PUB="$LAB_DIR/hostkey.pub"
[ -r "$CLIENTKEY" ] || die "no client key at $CLIENTKEY: run up.sh"
[ -r "$HOSTKEY_PUB" ] || die "no host key at $HOSTKEY_PUB: run up.sh"
[ -r "$LAB_DIR/lab.json" ] || fail "no $LAB_DIR/lab.json"

# Our own known_hosts, built from the lab host key (not the one up.sh wrote,
# so that file is not trusted blindly either).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ "$LAB_SSH_PORT" = 22 ]; then kh_host=$LAB_SSH_HOST; else kh_host="[$LAB_SSH_HOST]:$LAB_SSH_PORT"; fi
printf '%s %s\n' "$kh_host" "$(cut -d' ' -f1,2 "$HOSTKEY_PUB")" >"$TMP/known_hosts"
: >"$TMP/empty_known_hosts"

lab_ssh() { # known_hosts user remote-command
  local kh=$1 user=$2
  shift 2
  ssh -n -i "$CLIENTKEY" -p "$LAB_SSH_PORT" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$kh" \
    -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR \
    "$user@$LAB_SSH_HOST" "$@"
}

# Expected domain names of a host in a given state, one per line.
expected() { # user state|all
  local vm h _slug state name
  for vm in "${LAB_VMS[@]}"; do
    IFS='|' read -r h _slug state name <<<"$vm"
    [ "$h" = "$1" ] || continue
    [ "$2" = all ] || [ "$2" = "$state" ] || continue
    printf '%s\n' "$name"
  done
}

# Compare two newline-separated name sets exactly (order-insensitive).
same_set() { [ "$(printf '%s\n' "$1" | sed '/^$/d' | sort)" = "$(printf '%s\n' "$2" | sed '/^$/d' | sort)" ]; }

echo "Checking the Backroll KVM lab ($LAB_SSH_HOST:$LAB_SSH_PORT, $LAB_DIR)"
for user in "${LAB_HOSTS[@]}"; do
  echo "host $user:"
  # The remote commands are constant strings: no VM name goes through the
  # remote shell.
  if out=$(lab_ssh "$TMP/known_hosts" "$user" "virsh -c $LAB_URI list --all" 2>&1); then
    ok "ssh $user@$LAB_SSH_HOST:$LAB_SSH_PORT + virsh list --all"
    printf '%s\n' "$out" | sed 's/^/        /'
  else
    fail "ssh/virsh as $user: $out"
    continue
  fi
  all=$(lab_ssh "$TMP/known_hosts" "$user" "virsh -q -c $LAB_URI list --all --name" 2>&1) || all=""
  running=$(lab_ssh "$TMP/known_hosts" "$user" "virsh -q -c $LAB_URI list --state-running --name" 2>&1) || running=""
  shutoff=$(lab_ssh "$TMP/known_hosts" "$user" "virsh -q -c $LAB_URI list --state-shutoff --name" 2>&1) || shutoff=""
  # Test runs may add domains; what must hold is that every lab VM is there
  # in its state. (Exact equality is reported as a note, not a failure.)
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    if printf '%s\n' "$running" | grep -qxF -- "$name"; then ok "running:  $name"; else fail "expected running: $name"; fi
  done < <(expected "$user" running)
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    if printf '%s\n' "$shutoff" | grep -qxF -- "$name"; then ok "shut off: $name"; else fail "expected shut off: $name"; fi
  done < <(expected "$user" "shut off")
  same_set "$all" "$(expected "$user" all)" || echo "  note  $user has domains besides the lab's"

  # The canary: present only if something ran a VM name through a shell.
  home=$(user_home "$user")
  if [ -e "$home/$LAB_CANARY" ]; then fail "canary $home/$LAB_CANARY exists: a VM name went through a shell"; else ok "no $home/$LAB_CANARY"; fi
done

# Host key checking must actually be enforced: an unknown host key is refused.
if lab_ssh "$TMP/empty_known_hosts" "${LAB_HOSTS[0]}" true >/dev/null 2>&1; then
  fail "ssh with an empty known_hosts was accepted"
else
  ok "ssh with an unknown host key is refused"
fi
# Root must not get in with the lab key.
if lab_ssh "$TMP/known_hosts" root true >/dev/null 2>&1; then fail "root login accepted"; else ok "root login refused"; fi
if command -v borg >/dev/null; then ok "borg: $(borg --version)"; else fail "borg not installed"; fi

if [ "$FAILS" -gt 0 ]; then
  echo "lab check: $FAILS failure(s)"
  exit 1
fi
echo "lab check: all OK"
