#!/usr/bin/env bash
# Measures the image writer (docs/incremental.md) against borg create, without a VM:
# a qcow2 v3 disk of SIZE GiB of random data served by qemu-nbd (read-only, with a dirty
# bitmap for the incremental run), 1 % changed in 64 KiB writes spread over the disk.
# Usage: bench/incremental-writer.sh [SIZE_GIB=1] [WORKDIR=/tmp/backroll-bench-incremental]
# Prints seconds and bytes read for: borg create of the qcow2 file (first, after the change),
# the writer's full read, the writer's incremental read.
set -euo pipefail
SIZE=${1:-1}
T=${2:-/tmp/backroll-bench-incremental}
W=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/server/python/backroll_image_writer.py
PY=$(head -1 "$(command -v borg)" | sed 's/^#!\s*//')
rm -rf "$T"; mkdir -p "$T"; cd "$T"
export BORG_BASE_DIR=$T/b BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
head -c "${SIZE}G" /dev/urandom > rand.raw
qemu-img convert -f raw -O qcow2 -o compat=1.1 rand.raw d.qcow2; rm rand.raw
borg init -e none repo >/dev/null; borg init -e none repo2 >/dev/null
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
serve() { rm -f s.sock; qemu-nbd -r -k "$T/s.sock" -f qcow2 -x vda "$@" d.qcow2 --fork --persistent -e 4 --pid-file "$T/nbd.pid"; }
stop() { kill "$(cat nbd.pid)"; sleep 1; }
job() { printf '{"repo":"%s/repo","archive":"%s","itemPath":"x/d.qcow2","compression":"lz4","timestamp":"%s","socket":"%s/s.sock","export":"vda","chunkSize":65536%s}\n' "$T" "$1" "$2" "$T" "$3"; }
run() { local s out; s=$(date +%s.%N); out=$(job "$@" | "$PY" "$W" | tail -1); echo "$(echo "$(date +%s.%N) - $s" | bc) s, bytes read $(echo "$out" | sed 's/.*"bytesRead": \([0-9]*\).*/\1/')"; }
echo "disk: ${SIZE} GiB of random data"
echo "borg create (first):            $(secs borg create repo2::a1 d.qcow2) s"
serve; echo "writer, full read:              $(run a1 2026-12-02T10:00:00 '')"; stop
qemu-img bitmap --add d.qcow2 cp1
n=$((SIZE * 160)); step=$((SIZE * 1024 * 1024 * 1024 / n / 65536 * 65536))
args=(); for i in $(seq 0 $((n - 1))); do args+=(-c "write -P $((i % 250 + 1)) $((i * step)) 64k"); done
qemu-io -f qcow2 "${args[@]}" d.qcow2 >/dev/null
echo "borg create (after 1 % change): $(secs borg create repo2::a2 d.qcow2) s"
serve -B cp1; echo "writer, incremental:            $(run a2 2026-12-02T11:00:00 ',"baseArchive":"a1","bitmap":"qemu:dirty-bitmap:cp1"')"; stop
rm -rf "$T"
