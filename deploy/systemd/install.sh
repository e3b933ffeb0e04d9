#!/usr/bin/env bash
# Installs Backroll from this checkout into /opt/backroll and its systemd units, as root:
#   sudo bash deploy/systemd/install.sh            # then edit /etc/backroll/backroll.env
#   sudo systemctl enable --now backroll            # api + scheduler (+ worker in embedded mode)
#   sudo systemctl enable --now backroll-worker@1   # distributed mode: one per worker
# Re-running it upgrades the code and keeps the settings and the data dir.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
prefix=/opt/backroll
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  borgbackup openssh-client qemu-utils libvirt-clients >/dev/null
getent group backroll >/dev/null || groupadd --system backroll
getent passwd backroll >/dev/null || useradd --system --gid backroll --home-dir /var/lib/backroll --shell /usr/sbin/nologin backroll
install -d -m 0700 -o backroll -g backroll /var/lib/backroll
install -d -m 0750 -o root -g backroll /etc/backroll

# Node.js 24 LTS and the npm packages, built in the checkout, then copied.
node_bin=$(cd "$src" && source scripts/runtime.sh && backroll_ensure_deps >&2 && npm run build --silent >&2 && command -v node)
install -d -m 0755 "$prefix"
cp -a "$src/package.json" "$src/package-lock.json" "$src/README.md" "$src/node_modules" "$src/server" "$prefix/"
install -d -m 0755 "$prefix/node/bin" && install -m 0755 "$node_bin" "$prefix/node/bin/node"

[ -f /etc/backroll/backroll.env ] || install -m 0640 -o root -g backroll "$src/deploy/systemd/backroll.env.example" /etc/backroll/backroll.env
install -m 0644 "$src/deploy/systemd/backroll.service" "$src/deploy/systemd/backroll-worker@.service" /etc/systemd/system/
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "Installed in $prefix. Edit /etc/backroll/backroll.env (add ReadWritePaths= for your storages with systemctl edit), then: systemctl enable --now backroll"
