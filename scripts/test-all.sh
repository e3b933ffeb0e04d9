#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: installs the system
# packages, starts PostgreSQL/MariaDB/Redis if they are down, brings up the KVM
# lab (real libvirt, QEMU, sshd, borg), installs the npm packages, builds, runs
# every test and prints "N passed, N failed, N skipped".
# Without root it runs what it can; tests whose component is missing are skipped
# with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ "$(id -u)" = 0 ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  bash scripts/ci/services.sh
  bash scripts/lab/up.sh
else
  echo "[test-all] not root: system packages, services and the KVM lab are not set up; lab tests will be skipped"
fi

# Node.js 24 LTS (from the npm registry where the system's Node is older).
source scripts/runtime.sh
echo "[test-all] node $(node --version)"
backroll_ensure_deps
npm run typecheck --silent
npm run build --silent

# The main project (files in parallel), then the lab project (one file at a time): the
# lab's crash tests hold real timing bounds (recovery within the default task lease + 30 s)
# that must not depend on how busy the other project keeps the two cores.
results="$root/.test-results"
mkdir -p "$results"
rm -f "$results"/vitest-*.json
status=0
for project in main lab; do
  started=$(date +%s)
  (cd server && npx vitest run --project "$project" --reporter=default --reporter=json --outputFile.json="$results/vitest-$project.json") || status=$?
  echo "[test-all] project $project: $(( $(date +%s) - started )) s"
done
# The web console's component tests (happy-dom; no server needed).
started=$(date +%s)
(cd web && npx vitest run --reporter=default --reporter=json --outputFile.json="$results/vitest-web.json") || status=$?
echo "[test-all] web: $(( $(date +%s) - started )) s"
node scripts/ci/summary.mjs "$results/vitest-main.json" "$results/vitest-lab.json" "$results/vitest-web.json" || status=$?
exit $status
