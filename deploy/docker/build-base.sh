#!/usr/bin/env bash
# Builds the local base image `debian:bookworm-slim` that deploy/docker/Dockerfile and the
# CI images (deploy/docker/ci/) start FROM, without any container registry:
#   debootstrap --variant=minbase bookworm <dir> <mirror>  +  tar | docker import
# The mirror is the machine's own Debian mirror (first URIs: of /etc/apt/sources.list.d/
# debian.sources or first `deb` line of /etc/apt/sources.list); override with
# BACKROLL_DEBIAN_MIRROR. Idempotent: does nothing when the image exists (BACKROLL_BASE_FORCE=1
# rebuilds). Run as root (debootstrap needs it). Same name and tag as the registry's image, so
# a machine that can pull uses the official one and nothing here is needed.
set -euo pipefail

image=${BACKROLL_BASE_IMAGE:-debian:bookworm-slim}
suite=bookworm
log() { printf '[build-base] %s\n' "$*" >&2; }

if [ "${BACKROLL_BASE_FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image exists: nothing to do"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "debootstrap needs root"; exit 1
fi
command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }

mirror=${BACKROLL_DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}
security=${BACKROLL_DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}

work=$(mktemp -d /var/tmp/backroll-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
started=$(date +%s)
log "debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1
}

# What the official slim image does: the same apt sources (updates and security too), no
# recommends, no docs/man/locales from later installs, no apt lists or caches in the layer.
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
APT
echo 'APT::Install-Recommends "false"; APT::Install-Suggests "false";' > "$root/etc/apt/apt.conf.d/docker-no-recommends"
cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/usr/share/doc/*/[!c]* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/tmp/* "$root"/root/.bash_history
: > "$root/etc/machine-id"
# The hosts' name and resolver are docker's to provide.
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"

log "docker import -> $image"
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
  --message "debootstrap --variant=minbase $suite $mirror" - "$image" >/dev/null
log "built $image in $(( $(date +%s) - started )) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
