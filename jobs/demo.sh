#!/usr/bin/env bash
# The demo: ingest 160 annotated CCP photos at 192x128 with the 4-class label map (background,
# clothes, hair, skin), train jobs/demo.ini (ResNet18 U-Net, 5 epochs on 64 of them), evaluate
# it on the validation split, then parse the first 200 CCP photos with it
# (jobs/catalog/demo.ini) into runs/demo_catalog/master.h5 with 16 preview PNGs.
# Usage: jobs/demo.sh [BUILD_DIR]   (CCP_DIR defaults to ../shared/data/ccp)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
ccp="$(cd "${CCP_DIR:-$root/../shared/data/ccp}" 2>/dev/null && pwd)" || {
  echo "error: CCP not found at ${CCP_DIR:-$root/../shared/data/ccp} (set CCP_DIR)" >&2
  exit 1
}
cd "$root"
mkdir -p data
if [ ! -f data/ccp4_192x128.h5 ]; then
  "$build/ingest" ccp --root "$ccp" --out data/ccp4_192x128.h5 --height 192 --width 128 \
    --labels ccp4 --limit 160
fi
"$build/train" jobs/demo.ini
"$build/evaluate" --checkpoint runs/demo/last.h5 --data data/ccp4_192x128.h5 --split val
"$build/parse_catalog" jobs/catalog/demo.ini --preview 16 catalog.source="$ccp/photos"
