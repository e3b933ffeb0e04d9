# shellcheck shell=bash disable=SC2034
# (SC2034: the variables here are used by the scripts that source this file.)
# Shared definitions for the Backroll KVM lab scripts (sourced, not executed).
#
# The lab topology lives here, once: up.sh builds it, check.sh verifies it,
# down.sh tears it down, and lab.json is generated from it.

LAB_DIR="${BACKROLL_LAB_DIR:-/var/lib/backroll-lab}"
LAB_SSH_PORT="${BACKROLL_LAB_SSH_PORT:-2222}"
LAB_SSH_HOST="127.0.0.1"
LAB_URI="qemu:///session"

# Each unix user is one independent "hypervisor host" with its own
# qemu:///session libvirt, reached over SSH as that user.
LAB_HOSTS=(kvmhost1 kvmhost2)

# The hostile VM name: libvirt accepts it (no '/'), and anything that ever
# passes it through a shell in the SSH user's home creates the file PWNED
# there -- that file is the canary check.sh looks for.
# shellcheck disable=SC2016  # the $(...) and `...` are meant literally
LAB_EVIL_NAME='evil$(touch PWNED);'"'"'"`id` x'
LAB_CANARY="PWNED"

# VMs: "host|slug|state|name". The slug is a file-system-safe id used for the
# disk and XML file names (the hostile name must never become a path).
# state is the libvirt state the lab leaves it in: "running" or "shut off".
LAB_VMS=(
  "kvmhost1|vm-running|running|vm-running"
  "kvmhost1|vm-stopped|shut off|vm-stopped"
  "kvmhost1|vm-twodisks|running|vm-twodisks"
  "kvmhost1|vm-template|running|vm-template"
  "kvmhost1|evil|running|${LAB_EVIL_NAME}"
  "kvmhost2|vm2-running|running|vm2-running"
  "kvmhost2|vm2-stopped|shut off|vm2-stopped"
)

# Disks: "host|slug|target|sizeMiB|byte|offsetMiB|lengthMiB|backing".
# Before the VM first starts, `length` MiB of `byte` are written at `offset`
# MiB into the (top) image, so backup tests have known content to find.
# backing=template: the disk is a qcow2 overlay on the host's template image.
LAB_DISKS=(
  "kvmhost1|vm-running|vda|64|0x11|0|1|"
  "kvmhost1|vm-stopped|vda|64|0x12|0|1|"
  "kvmhost1|vm-twodisks|vda|64|0x21|0|1|"
  "kvmhost1|vm-twodisks|vdb|128|0x22|0|1|"
  "kvmhost1|vm-template|vda|64|0x44|1|1|template"
  "kvmhost1|evil|vda|64|0x66|0|1|"
  "kvmhost2|vm2-running|vda|64|0x51|0|1|"
  "kvmhost2|vm2-stopped|vda|64|0x52|0|1|"
)

# The template (base) image of the template VM: 64 MiB, 1 MiB of 0x33 at 0.
# Through the overlay the guest thus sees 0x33 at 0-1M and 0x44 at 1M-2M.
LAB_TEMPLATE_REL="templates/base.qcow2"
LAB_TEMPLATE_SIZE_MIB=64
LAB_TEMPLATE_BYTE=0x33
LAB_TEMPLATE_OFFSET_MIB=0
LAB_TEMPLATE_LENGTH_MIB=1

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

require_root() { [ "$(id -u)" -eq 0 ] || die "run as root"; }

user_home() { getent passwd "$1" | cut -d: -f6; }

# Run a command as a lab host user, in a clean environment like the one an
# SSH login of that user gets (sshd here runs without PAM/systemd, so no
# XDG_RUNTIME_DIR). This matters: the session libvirt daemon's socket lives in
# $XDG_RUNTIME_DIR/libvirt, or ~/.cache/libvirt when that is unset. If our
# commands set it and SSH logins don't, each side would autostart its own
# session daemon and they would disagree about which VMs are running.
# argv is passed through untouched: no shell ever sees a VM name.
as_host() {
  local user=$1 home
  shift
  home=$(user_home "$user")
  [ -n "$home" ] || die "no such user: $user"
  # cd first: the autostarted session daemon inherits the cwd.
  (cd "$home" && runuser -u "$user" -- env -i \
    HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
    PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$@")
}

# virsh against a host user's session libvirt.
hvirsh() {
  local user=$1
  shift
  as_host "$user" virsh -q -c "$LAB_URI" "$@"
}

# Escape a string as a JSON string literal (with quotes).
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

# Escape a string for XML text/attribute content.
xml_escape() {
  local s=$1
  # Replacements are quoted: with bash 5.2's patsub_replacement an unquoted
  # '&' in the replacement stands for the matched text.
  s=${s//&/'&amp;'}
  s=${s//</'&lt;'}
  s=${s//>/'&gt;'}
  s=${s//\"/'&quot;'}
  s=${s//\'/'&apos;'}
  printf '%s' "$s"
}

# Disk image path of a VM disk, in the host user's home.
disk_path() { # host slug target
  printf '%s/vms/%s-%s.qcow2' "$(user_home "$1")" "$2" "$3"
}

# Is the lab's sshd (per its pid file) running?
lab_sshd_pid() {
  local pidfile="$LAB_DIR/sshd.pid" pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -d "/proc/$pid" ] || return 1
  # Guard against a recycled pid: it must be an sshd.
  grep -q sshd "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}
