#!/usr/bin/env bash
# The main job on the bundled examples (npm run example): validates every file in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
node scripts/build.mjs
files=(examples/*.yaml)
echo "coreos-cloudinit --validate --from-file ${files[*]}"
status=0
node bin/coreos-cloudinit.js --validate --from-file "${files[@]}" "$@" || status=$?
[ "$status" -eq 0 ] && echo "valid: ${#files[@]} files, no errors"
exit "$status"
