#!/usr/bin/env bash
# The main job on the bundled examples (npm run example): validates every file in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
node scripts/build.mjs
exec node bin/coreos-cloudinit.js --validate --from-file examples/*.yaml "$@"
