#!/usr/bin/env bash
# The demo: ingest 96 annotated CCP photos at 192x128, train jobs/demo.ini
# (ResNet18 U-Net, 3 epochs) and evaluate the result on the validation split.
# Usage: jobs/demo.sh [BUILD_DIR]   (CCP_DIR defaults to ../shared/data/ccp)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
ccp="${CCP_DIR:-$root/../shared/data/ccp}"
cd "$root"
if [ ! -d "$ccp/photos" ]; then
  echo "error: CCP not found at $ccp (set CCP_DIR)" >&2
  exit 1
fi
mkdir -p data
if [ ! -f data/ccp_192x128.h5 ]; then
  "$build/ingest" ccp --root "$ccp" --out data/ccp_192x128.h5 --height 192 --width 128 --limit 96
fi
"$build/train" jobs/demo.ini
"$build/evaluate" --checkpoint runs/demo/last.h5 --data data/ccp_192x128.h5 --split val
