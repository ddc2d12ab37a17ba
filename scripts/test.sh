#!/usr/bin/env bash
# The test command (npm test): installs what a fresh machine lacks, builds, type-checks, and runs
# every test. Extra arguments go to jest (npm test -- test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
node scripts/build.mjs
npx tsc --noEmit -p tsconfig.json
# The machine tests (test/machine) build a disk image and boot it in QEMU. The first boot (a few
# minutes) runs every time; the update journeys (update.test.ts: two machines updated under a real
# etcd lock, then a broken release rolled back; power-loss.test.ts: one machine losing power twice
# during an update) only with BOOTSMITH_MACHINE_TESTS=1, or alone: `npx jest test/machine`.
if [ $# -eq 0 ] && [ "${BOOTSMITH_MACHINE_TESTS:-0}" != 1 ]; then
  set -- --testPathIgnorePatterns /node_modules/ /test/machine/update.test.ts /test/machine/power-loss.test.ts
fi
npx jest "$@"
