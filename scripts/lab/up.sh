#!/usr/bin/env bash
# Build (or bring back up) the Backroll KVM test lab: real libvirt, real
# QEMU/KVM, real sshd, real borg -- on one Debian 12 machine, as root, without
# systemd. See /work/shared/LAB.md for the recipe this follows.
#
#   - two independent hypervisor "hosts": unix users kvmhost1 and kvmhost2,
#     each with its own qemu:///session libvirt;
#   - an sshd on 127.0.0.1:${BACKROLL_LAB_SSH_PORT:-2222} to reach them;
#   - a client key pair authorised for both;
#   - small test VMs (no OS, no network) with known data in their disks;
#   - ${BACKROLL_LAB_DIR:-/var/lib/backroll-lab}/lab.json describing it all.
#
# Idempotent: running it again only fixes what is missing or not in the
# expected state (a stopped "running" VM is started, etc.). It does not reset
# disk contents of existing VMs: for a pristine lab run down.sh then up.sh.
#
# Env: BACKROLL_LAB_DIR, BACKROLL_LAB_SSH_PORT,
#      BACKROLL_LAB_DOMAIN_TYPE=kvm|qemu (force; default: kvm if usable).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

require_root
START_SECONDS=$SECONDS

###############################################################################
# 1. Packages
###############################################################################
PACKAGES=(borgbackup libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils openssh-server openssh-client iproute2)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  # Keep package maintainer scripts from starting services (e.g. a system
  # sshd on port 22): the lab starts exactly what it needs, its own way.
  # This is the standard policy-rc.d mechanism; we only add it if absent and
  # remove it again afterwards.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy_added=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  if [ "$policy_added" -eq 1 ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
else
  log "packages already installed"
fi

###############################################################################
# 2. System libvirt (libvirtd + virtlogd) without systemd
###############################################################################
# Without the libvirt-qemu user the QEMU driver fails to initialise.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt /run/libvirt /etc/libvirt

# qemu.conf for the *system* daemon (session daemons don't read it). Only
# written when absent or ours: never clobber an admin's configuration.
QEMU_CONF=/etc/libvirt/qemu.conf
QEMU_CONF_MARK="# backroll-lab"
if [ ! -e "$QEMU_CONF" ] || grep -qF "$QEMU_CONF_MARK" "$QEMU_CONF"; then
  printf '%s: written by scripts/lab/up.sh\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n' \
    "$QEMU_CONF_MARK" >"$QEMU_CONF"
else
  log "leaving existing $QEMU_CONF alone"
fi

# "Running" is judged by the daemons' pid files: the session daemons of the
# host users are also called libvirtd/virtlogd, so pgrep by name would lie.
# The cmdline check also rejects a zombie or a recycled pid (kill -0 would
# accept both).
pid_alive() { # pidfile name
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  grep -qF "$2" "/proc/$pid/cmdline" 2>/dev/null
}
if ! pid_alive /run/virtlogd.pid virtlogd; then
  log "starting virtlogd"
  virtlogd -d # without virtlogd a domain fails to start
fi
if ! pid_alive /run/libvirtd.pid libvirtd; then
  log "starting libvirtd"
  libvirtd -d
fi
for _ in $(seq 50); do
  virsh -q -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
virsh -q -c qemu:///system version >/dev/null || die "system libvirtd does not answer"

###############################################################################
# 3. Hypervisor host users
###############################################################################
for user in "${LAB_HOSTS[@]}"; do
  if ! getent passwd "$user" >/dev/null; then
    log "creating user $user"
    useradd -m -s /bin/bash -G kvm "$user"
  fi
  usermod -aG kvm "$user"
  # useradd leaves the account locked ('!'); sshd with UsePAM=no then refuses
  # even key logins. '*' = unlocked but no password can ever match.
  usermod -p '*' "$user"
  home=$(user_home "$user")
  chmod 0700 "$home" # sshd StrictModes: home must not be group/world-writable
  as_host "$user" mkdir -p vms templates
done

###############################################################################
# 4. /dev/kvm and the domain type
###############################################################################
if [ -c /dev/kvm ]; then
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi
# /dev/kvm existing is not enough (e.g. nested virt disabled): ask QEMU itself
# to start with KVM, as a host user, i.e. with the permissions VMs will have.
kvm_usable() {
  [ -c /dev/kvm ] || return 1
  printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' |
    as_host "${LAB_HOSTS[0]}" timeout 30 qemu-system-x86_64 -machine none \
      -accel kvm -nodefaults -display none -qmp stdio >/dev/null 2>&1
}
if [ -n "${BACKROLL_LAB_DOMAIN_TYPE:-}" ]; then
  DOMAIN_TYPE=$BACKROLL_LAB_DOMAIN_TYPE
  case "$DOMAIN_TYPE" in kvm | qemu) ;; *) die "BACKROLL_LAB_DOMAIN_TYPE must be kvm or qemu" ;; esac
elif kvm_usable; then
  DOMAIN_TYPE=kvm
else
  DOMAIN_TYPE=qemu
  log "KVM not usable: VMs use TCG (domain type 'qemu')"
fi

###############################################################################
# 5. Lab dir, keys, sshd on loopback
###############################################################################
install -d -m 0755 "$LAB_DIR"
HOSTKEY="$LAB_DIR/hostkey"
CLIENTKEY="$LAB_DIR/client_ed25519"
KNOWN_HOSTS="$LAB_DIR/known_hosts"
SSHD_CONFIG="$LAB_DIR/sshd_config"
[ -s "$HOSTKEY" ] || ssh-keygen -q -t ed25519 -N '' -C backroll-lab-host -f "$HOSTKEY"
[ -s "$CLIENTKEY" ] || ssh-keygen -q -t ed25519 -N '' -C backroll-lab-client -f "$CLIENTKEY"
chmod 0600 "$HOSTKEY" "$CLIENTKEY"

# known_hosts entry for the lab host key, so clients can keep strict host
# key checking on. Non-default ports use the [host]:port form.
if [ "$LAB_SSH_PORT" = 22 ]; then kh_host=$LAB_SSH_HOST; else kh_host="[$LAB_SSH_HOST]:$LAB_SSH_PORT"; fi
printf '%s %s\n' "$kh_host" "$(cut -d' ' -f1,2 "$HOSTKEY.pub")" >"$KNOWN_HOSTS"

new_config=$(
  cat <<EOF
# Backroll KVM lab sshd -- generated by scripts/lab/up.sh; do not edit.
Port $LAB_SSH_PORT
ListenAddress $LAB_SSH_HOST
HostKey $HOSTKEY
PidFile $LAB_DIR/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers ${LAB_HOSTS[*]}
X11Forwarding no
# Tests open many SSH connections at once; the default (10:30:100) starts
# dropping unauthenticated connections at random beyond 10.
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
EOF
)
config_changed=0
if [ ! -e "$SSHD_CONFIG" ] || [ "$(cat "$SSHD_CONFIG")" != "$new_config" ]; then
  printf '%s\n' "$new_config" >"$SSHD_CONFIG"
  config_changed=1
fi
install -d -m 0755 /run/sshd # privilege separation dir, normally made by the init script
/usr/sbin/sshd -t -f "$SSHD_CONFIG" || die "invalid $SSHD_CONFIG"

if pid=$(lab_sshd_pid); then
  if [ "$config_changed" -eq 1 ]; then
    log "sshd config changed: reloading sshd ($pid)"
    kill -HUP "$pid" # sshd re-executes itself with the new config
    sleep 1
  fi
else
  if ss -Hltn "( sport = :$LAB_SSH_PORT )" | grep -q .; then
    die "port $LAB_SSH_PORT is already in use by something that is not the lab sshd"
  fi
  log "starting sshd on $LAB_SSH_HOST:$LAB_SSH_PORT"
  /usr/sbin/sshd -f "$SSHD_CONFIG" -E "$LAB_DIR/sshd.log"
fi
for _ in $(seq 50); do
  ss -Hltn "( sport = :$LAB_SSH_PORT )" | grep -q . && break
  sleep 0.1
done
lab_sshd_pid >/dev/null || die "lab sshd is not running (see $LAB_DIR/sshd.log)"

"$HERE/authorize-key.sh" "$CLIENTKEY.pub"

###############################################################################
# 6. Session libvirt of each host user
###############################################################################
# `virsh -c qemu:///session` autostarts a per-user daemon (libvirtd
# --timeout=120, which stays up while any VM runs) and, from it, a per-user
# virtlogd. No systemd/dbus needed; what IS needed is that every client of a
# user agrees on the socket dir -- see as_host in lib.sh (XDG_RUNTIME_DIR).
for user in "${LAB_HOSTS[@]}"; do
  ok=0
  for _ in $(seq 10); do
    if hvirsh "$user" version >/dev/null 2>&1; then ok=1 && break; fi
    sleep 0.5
  done
  [ "$ok" -eq 1 ] || { hvirsh "$user" version || true; die "session libvirt of $user does not work"; }
  hvirsh "$user" domcapabilities --virttype "$DOMAIN_TYPE" --arch x86_64 >/dev/null ||
    die "session libvirt of $user cannot do domain type $DOMAIN_TYPE"
done

###############################################################################
# 7. Test VMs
###############################################################################
# Write `len` MiB of `byte` at `off` MiB into a qcow2 image, as the host user.
write_image() { # user path byte off len
  local out
  out=$(as_host "$1" qemu-io -f qcow2 -c "write -P $3 ${4}M ${5}M" "$2" 2>&1) ||
    die "qemu-io failed on $2: $out"
  case "$out" in *wrote*) ;; *) die "qemu-io did not write to $2: $out" ;; esac
}

# The template image of a host: created once, kept while overlays use it.
ensure_template() { # user
  local user=$1 base
  base="$(user_home "$user")/$LAB_TEMPLATE_REL"
  [ -s "$base" ] && return 0
  log "$user: creating template $base"
  as_host "$user" qemu-img create -q -f qcow2 "$base" "${LAB_TEMPLATE_SIZE_MIB}M"
  write_image "$user" "$base" "$LAB_TEMPLATE_BYTE" "$LAB_TEMPLATE_OFFSET_MIB" "$LAB_TEMPLATE_LENGTH_MIB"
}

# Fresh disk image with its known data (the VM must not be running).
create_disk() { # user slug target size byte off len backing
  local user=$1 path base
  path=$(disk_path "$1" "$2" "$3")
  as_host "$user" rm -f "$path"
  if [ "$8" = template ]; then
    ensure_template "$user"
    base="$(user_home "$user")/$LAB_TEMPLATE_REL"
    # -F: record the backing format in the overlay, so nothing has to probe it.
    as_host "$user" qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$path" "${4}M"
  else
    as_host "$user" qemu-img create -q -f qcow2 "$path" "${4}M"
  fi
  write_image "$user" "$path" "$5" "$6" "$7"
}

# Disk records of one VM, one per line.
vm_disks() { # user slug
  local d
  for d in "${LAB_DISKS[@]}"; do
    case "$d" in "$1|$2|"*) printf '%s\n' "$d" ;; esac
  done
}

domain_xml() { # user slug name
  local user=$1 slug=$2 name=$3 h s target size byte off len backing
  printf "<domain type='%s'>\n" "$DOMAIN_TYPE"
  printf '  <name>%s</name>\n' "$(xml_escape "$name")"
  printf "  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n"
  printf "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
  printf '  <devices>\n'
  while IFS='|' read -r h s target size byte off len backing; do
    printf "    <disk type='file' device='disk'>\n"
    printf "      <driver name='qemu' type='qcow2'/>\n"
    printf "      <source file='%s'/>\n" "$(xml_escape "$(disk_path "$user" "$slug" "$target")")"
    printf "      <target dev='%s' bus='virtio'/>\n" "$target"
    printf '    </disk>\n'
  done < <(vm_disks "$user" "$slug")
  # No <interface>: test VMs have no network. No OS either: the VM sits in
  # the BIOS, which is all a live backup needs.
  printf '  </devices>\n</domain>\n'
}

ensure_vm() { # user slug state name
  local user=$1 slug=$2 want=$3 name=$4 cur h s target size byte off len backing xml missing_disk=0
  # Every virsh call gets the name as its own argv element (--domain NAME):
  # never through a shell string.
  cur=$(hvirsh "$user" domstate --domain "$name" 2>/dev/null) || cur=""
  while IFS='|' read -r h s target size byte off len backing; do
    [ -e "$(disk_path "$user" "$slug" "$target")" ] || missing_disk=1
  done < <(vm_disks "$user" "$slug")
  if [ -n "$cur" ] && [ "$missing_disk" -eq 1 ] && [ "$cur" = "shut off" ]; then
    log "$user: $slug is defined but a disk is missing: redefining it"
    hvirsh "$user" undefine --domain "$name" --snapshots-metadata --checkpoints-metadata >/dev/null
    cur=""
  fi
  if [ -z "$cur" ]; then
    log "$user: creating VM $slug"
    while IFS="|" read -r _ _ target size byte off len backing; do
      create_disk "$user" "$slug" "$target" "$size" "$byte" "$off" "$len" "$backing"
    done < <(vm_disks "$user" "$slug")
    xml="$(user_home "$user")/vms/$slug.xml"
    domain_xml "$user" "$slug" "$name" | as_host "$user" tee "$xml" >/dev/null
    hvirsh "$user" define --file "$xml" >/dev/null
    cur="shut off"
  fi
  case "$want|$cur" in
  "running|running" | "shut off|shut off") ;;
  "running|paused")
    log "$user: resuming $slug"
    hvirsh "$user" resume --domain "$name" >/dev/null
    ;;
  "running|"*)
    [ "$cur" = "shut off" ] || hvirsh "$user" destroy --domain "$name" >/dev/null 2>&1 || true
    log "$user: starting $slug"
    if ! hvirsh "$user" start --domain "$name" >/dev/null; then
      tail -n 20 "$(user_home "$user")/.cache/libvirt/qemu/log/$name.log" >&2 2>/dev/null || true
      die "$user: cannot start $slug"
    fi
    ;;
  "shut off|"*)
    log "$user: stopping $slug (was $cur)"
    hvirsh "$user" destroy --domain "$name" >/dev/null
    ;;
  esac
  cur=$(hvirsh "$user" domstate --domain "$name")
  [ "$cur" = "$want" ] || die "$user: $slug is '$cur', expected '$want'"
  # Record the type the VM really has: a VM kept from an earlier run may have
  # been defined with another type (e.g. BACKROLL_LAB_DOMAIN_TYPE=qemu).
  SEEN_TYPES["$(hvirsh "$user" dumpxml --domain "$name" --inactive --xpath /domain/@type |
    sed -n 's/^ *type="\([a-z]*\)".*/\1/p')"]=1
}

declare -A SEEN_TYPES=()
for vm in "${LAB_VMS[@]}"; do
  IFS='|' read -r user slug state name <<<"$vm"
  ensure_vm "$user" "$slug" "$state" "$name"
done
# lab.json must describe the VMs as they are.
if [ "${#SEEN_TYPES[@]}" -ne 1 ] || [ -z "${SEEN_TYPES[$DOMAIN_TYPE]:-}" ]; then
  types="${!SEEN_TYPES[*]}"
  [ "${#SEEN_TYPES[@]}" -eq 1 ] || die "lab VMs have mixed domain types ($types): run down.sh, then up.sh"
  log "WARNING: the lab VMs were defined earlier with domain type '$types', not '$DOMAIN_TYPE' (run down.sh first to change it)"
  DOMAIN_TYPE=$types
fi

###############################################################################
# 8. lab.json
###############################################################################
write_lab_json() {
  local first_h=1 first_v first_d user home vm h slug state name d dh ds target size byte off len backing bpath
  printf '{\n'
  printf '  "labDir": %s,\n' "$(json_str "$LAB_DIR")"
  printf '  "sshHost": %s,\n' "$(json_str "$LAB_SSH_HOST")"
  printf '  "sshPort": %s,\n' "$LAB_SSH_PORT"
  printf '  "hostKeyPath": %s,\n' "$(json_str "$HOSTKEY.pub")"
  printf '  "knownHostsPath": %s,\n' "$(json_str "$KNOWN_HOSTS")"
  printf '  "clientKeyPath": %s,\n' "$(json_str "$CLIENTKEY")"
  printf '  "clientPublicKeyPath": %s,\n' "$(json_str "$CLIENTKEY.pub")"
  printf '  "domainType": %s,\n' "$(json_str "$DOMAIN_TYPE")"
  printf '  "canaryFile": %s,\n' "$(json_str "$LAB_CANARY")"
  printf '  "hosts": ['
  for user in "${LAB_HOSTS[@]}"; do
    home=$(user_home "$user")
    [ "$first_h" -eq 1 ] || printf ','
    first_h=0
    printf '\n    {\n      "name": %s,\n      "user": %s,\n      "home": %s,\n      "libvirtUri": %s,\n' \
      "$(json_str "$user")" "$(json_str "$user")" "$(json_str "$home")" "$(json_str "$LAB_URI")"
    printf '      "templatePath": %s,\n' "$(json_str "$home/$LAB_TEMPLATE_REL")"
    printf '      "vms": ['
    first_v=1
    for vm in "${LAB_VMS[@]}"; do
      IFS='|' read -r h slug state name <<<"$vm"
      [ "$h" = "$user" ] || continue
      [ "$first_v" -eq 1 ] || printf ','
      first_v=0
      printf '\n        {"name": %s, "state": %s, "disks": [' "$(json_str "$name")" "$(json_str "$state")"
      first_d=1
      for d in "${LAB_DISKS[@]}"; do
        IFS='|' read -r dh ds target size byte off len backing <<<"$d"
        [ "$dh|$ds" = "$user|$slug" ] || continue
        [ "$first_d" -eq 1 ] || printf ','
        first_d=0
        if [ "$backing" = template ]; then bpath=$(json_str "$home/$LAB_TEMPLATE_REL"); else bpath=null; fi
        # "data": the guest-visible ranges with known content (bytes).
        printf '\n          {"target": %s, "path": %s, "format": "qcow2", "sizeBytes": %d, "backing": %s, "data": [' \
          "$(json_str "$target")" "$(json_str "$(disk_path "$user" "$slug" "$target")")" \
          $((size * 1048576)) "$bpath"
        if [ "$backing" = template ]; then
          printf '{"offset": %d, "length": %d, "byte": %d}, ' $((LAB_TEMPLATE_OFFSET_MIB * 1048576)) \
            $((LAB_TEMPLATE_LENGTH_MIB * 1048576)) $((LAB_TEMPLATE_BYTE))
        fi
        printf '{"offset": %d, "length": %d, "byte": %d}]}' $((off * 1048576)) $((len * 1048576)) $((byte))
      done
      printf '\n        ]}'
    done
    printf '\n      ]\n    }'
  done
  printf '\n  ]\n}\n'
}
write_lab_json >"$LAB_DIR/lab.json.tmp"
mv "$LAB_DIR/lab.json.tmp" "$LAB_DIR/lab.json"

###############################################################################
# 9. Summary
###############################################################################
echo
echo "Backroll KVM lab is up ($((SECONDS - START_SECONDS))s)"
echo "  lab dir:     $LAB_DIR (lab.json, client key client_ed25519, known_hosts)"
echo "  ssh:         ssh -i $CLIENTKEY -o UserKnownHostsFile=$KNOWN_HOSTS -p $LAB_SSH_PORT <host user>@$LAB_SSH_HOST"
echo "  domain type: $DOMAIN_TYPE"
for user in "${LAB_HOSTS[@]}"; do
  echo "  host $user ($LAB_URI):"
  hvirsh "$user" list --all | sed 's/^/    /'
done
