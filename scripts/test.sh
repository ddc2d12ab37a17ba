#!/usr/bin/env bash
# The test command (npm test): installs what a fresh machine lacks, builds, type-checks, and runs
# every test. Extra arguments go to jest (npm test -- test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
node scripts/build.mjs
npx tsc --noEmit -p tsconfig.json
# The machine tests (test/machine: a disk image built and booted in QEMU, minutes each) are not
# part of the default run yet; BOOTSMITH_MACHINE_TESTS=1 adds them, and `npx jest test/machine`
# runs them alone.
if [ $# -eq 0 ] && [ "${BOOTSMITH_MACHINE_TESTS:-0}" != 1 ]; then
  set -- --testPathIgnorePatterns /node_modules/ /test/machine/
fi
npx jest "$@"
