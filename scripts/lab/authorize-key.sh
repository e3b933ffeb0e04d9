#!/usr/bin/env bash
# Authorise an SSH public key for every lab host user (kvmhost1, kvmhost2, ...).
# Usage: authorize-key.sh <public key file>
# Appends each key line of the file to ~/.ssh/authorized_keys of each host
# user unless it is already there. Idempotent.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

require_root
[ $# -eq 1 ] || die "usage: $0 <public key file>"
keyfile=$1
[ -r "$keyfile" ] || die "cannot read $keyfile"

# Collect the key lines (skip blanks/comments) and validate each one, so a
# private key or garbage never ends up in authorized_keys.
keys=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'*) continue ;; esac
  ssh-keygen -l -f /dev/stdin <<<"$line" >/dev/null 2>&1 ||
    die "not a valid public key line in $keyfile: ${line:0:40}..."
  keys+=("$line")
done <"$keyfile"
[ ${#keys[@]} -gt 0 ] || die "no public key in $keyfile"

done_any=0
for user in "${LAB_HOSTS[@]}"; do
  getent passwd "$user" >/dev/null || {
    log "skip $user: no such user (run up.sh first)"
    continue
  }
  home=$(user_home "$user")
  group=$(id -gn "$user")
  ssh_dir="$home/.ssh"
  ak="$ssh_dir/authorized_keys"
  # sshd's StrictModes rejects keys in group/world-writable places.
  install -d -m 0700 -o "$user" -g "$group" "$ssh_dir"
  [ -e "$ak" ] || install -m 0600 -o "$user" -g "$group" /dev/null "$ak"
  for key in "${keys[@]}"; do
    if ! grep -qxF -- "$key" "$ak"; then
      # Make sure the previous last line ends in a newline before appending.
      if [ -s "$ak" ] && [ -n "$(tail -c1 "$ak")" ]; then echo >>"$ak"; fi
      printf '%s\n' "$key" >>"$ak"
      log "authorised key for $user"
    fi
  done
  chown "$user:$group" "$ak"
  chmod 0600 "$ak"
  done_any=1
done
[ "$done_any" -eq 1 ] || die "no lab host user exists"
