#!/usr/bin/env bash
# Makes a fresh checkout runnable: installs the npm dependencies (npm ci) when node_modules is
# missing or was installed from another package-lock.json. Used by the test and example commands.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "bootsmith needs Node.js 20 or newer with npm; install them first (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
stamp=node_modules/.bootsmith-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "ensure-deps: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi
