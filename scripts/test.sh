#!/usr/bin/env bash
# The test command (npm test): installs what a fresh machine lacks, builds, type-checks, and runs
# every test. Extra arguments go to jest as they are (npm test -- test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
node scripts/build.mjs
npx tsc --noEmit -p tsconfig.json
if [ $# -gt 0 ]; then
  exec npx jest "$@"
fi

# Everything but the machines first, then the machine suite (test/machine: the image booted in
# QEMU), on its own so that no other test loads the 2 cores under its VMs. Its three files share
# one image, built here once, and run two at a time: the update journeys (two VMs) beside the
# first boot and then the power loss (one VM each).
status=0
npx jest --testPathIgnorePatterns /node_modules/ /test/machine/ || status=1
if [ "$(id -u)" = 0 ] && [ -z "${BOOTSMITH_MACHINE_IMAGE:-}" ]; then
  work=$(mktemp -d /tmp/bootsmith-test-image.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  started=$(date +%s)
  if ! node images/make-images.js machine "$work/image" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    echo "FAIL: the machine image did not build (above); the machine tests did not run" >&2
    exit 1
  fi
  echo "machine image built in $(($(date +%s) - started)) s"
  export BOOTSMITH_MACHINE_IMAGE="$work/image"
fi
# Not root: the machine tests skip, saying what they need.
npx jest --maxWorkers 2 test/machine || status=1
exit $status
