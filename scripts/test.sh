#!/usr/bin/env bash
# The test command (npm test): installs what a fresh machine lacks, builds, type-checks, and runs
# every test. Extra arguments go to jest (npm test -- test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
node scripts/build.mjs
npx tsc --noEmit -p tsconfig.json
npx jest "$@"
