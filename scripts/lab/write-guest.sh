#!/usr/bin/env bash
# Write data into a running lab VM's disk as the guest would.
# Usage: write-guest.sh <host user> <vm name> <offset> <length> <byte|file:PATH> [target]
#   offset/length: qemu-io sizes (e.g. 4M, 65536); byte: 0xab or decimal;
#   file:PATH: write the first <length> bytes of that file instead (absolute
#   path of [A-Za-z0-9._/-], readable by the host user: QEMU reads it);
#   target: disk target (default vda).
# Example: write-guest.sh kvmhost1 vm-running 4M 2M 0xab
#
# The write goes through the guest device's own block backend
# (`qemu-io -d <qdev path>` over HMP), so it lands in whatever is currently
# the top of the disk chain -- e.g. the overlay during a snapshot backup --
# exactly like a guest write. (The node-name form is refused for attached
# disks.)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

require_root
[ $# -eq 5 ] || [ $# -eq 6 ] || die "usage: $0 <host user> <vm name> <offset> <length> <byte|file:PATH> [target]"
user=$1 name=$2 offset=$3 length=$4 byte=$5 target=${6:-vda}

# These values end up inside an HMP command line: accept only plain values.
size_re='^[0-9]+[kKmMgG]?$'
[[ $offset =~ $size_re ]] || die "bad offset: $offset"
[[ $length =~ $size_re ]] || die "bad length: $length"
if [[ $byte == file:* ]]; then
  src=${byte#file:}
  [[ $src =~ ^/[A-Za-z0-9._/-]+$ ]] || die "bad source file: $src"
  [ -f "$src" ] || die "no such file: $src"
  fill="-s $src"
else
  if ! [[ $byte =~ ^(0x[0-9a-fA-F]{1,2}|0|[1-9][0-9]{0,2})$ ]] || [ $((byte)) -gt 255 ]; then die "bad byte: $byte"; fi
  fill="-P $byte"
fi
[[ $target =~ ^[a-z]+$ ]] || die "bad target: $target"
getent passwd "$user" >/dev/null || die "no such user: $user"

# The VM name is passed as one argv element (--domain), never through a shell.
state=$(hvirsh "$user" domstate --domain "$name") || die "no domain '$name' on $user"
[ "$state" = running ] || die "domain '$name' on $user is '$state', not running"

# Target -> libvirt device alias (e.g. vdb -> virtio-disk1), then the alias ->
# the qdev path that query-block reports for that device.
# (virsh --xpath prints an attribute node as ` name="virtio-disk1"`; it does
# not evaluate string() expressions.)
alias=$(hvirsh "$user" dumpxml --domain "$name" --xpath "/domain/devices/disk[target/@dev='$target']/alias/@name" |
  sed -n 's/^ *name="\([^"]*\)".*/\1/p' | head -n1)
[ -n "$alias" ] || die "domain '$name' has no disk $target"
blocks=$(hvirsh "$user" qemu-monitor-command --domain "$name" --cmd '{"execute":"query-block"}')
qdev=$(printf '%s' "$blocks" | grep -o "\"qdev\":\"/machine/peripheral/$alias/[^\"]*\"" | head -n1 | cut -d'"' -f4)
[ -n "$qdev" ] || die "no qdev for $target ($alias) in query-block: $blocks"

hmp() {
  local reply
  reply=$(hvirsh "$user" qemu-monitor-command --domain "$name" --hmp --cmd "$1") || die "monitor command failed: $1"
  # The monitor's own errors (e.g. unknown device) come back as the reply...
  [ -z "${reply//[[:space:]]/}" ] || die "monitor: $reply"
}

# ...but qemu-io prints its result ("wrote N/N bytes at offset O", or
# "write failed: ...") on QEMU's stderr, which libvirt sends (via virtlogd)
# to the domain log, not to the monitor. So read the log's new bytes.
logf="$(user_home "$user")/.cache/libvirt/qemu/log/$name.log"
before=$(stat -c %s "$logf" 2>/dev/null || echo 0)
hmp "qemu-io -d $qdev \"write $fill $offset $length\""
# Flush so the new qcow2 clusters (metadata cached inside QEMU) are visible
# to anything reading the image file from outside, e.g. a backup.
hmp "qemu-io -d $qdev flush"

for _ in $(seq 50); do
  new=$(tail -c +"$((before + 1))" "$logf" 2>/dev/null || true)
  case "$new" in
  *failed* | *"not found"* | *rror*) die "write failed: $new" ;;
  *wrote*)
    printf '%s\n' "$(printf '%s\n' "$new" | grep -m1 wrote)"
    exit 0
    ;;
  esac
  sleep 0.1
done
die "no result from qemu-io in $logf"
