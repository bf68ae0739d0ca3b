#!/usr/bin/env bash
# Peak resident memory of one parse_catalog rank (GNU time's maximum RSS) at batch 8 and 64 over
# the first 128 CCP photos with a ResNet34 U-Net at 288x192 (jobs/catalog/bench.ini), for each
# build directory given (e.g. one built before inference-only models and one after), and for
# each precision the build knows (a build without model.precision runs as it is). Prints a
# markdown table.
#
#   results/parse_catalog_memory.sh CHECKPOINT.h5 BUILD_DIR [BUILD_DIR ...]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -ge 2 ]] || { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
checkpoint=$(realpath "$1")
shift
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| build | precision | batch | peak RSS (MB) |"
echo "|---|---|---|---|"
for build in "$@"; do
  build=$(realpath "$build")
  precisions=("")
  if "$build/parse_catalog" --help | grep -q model.precision; then precisions=(fp32 bf16); fi
  for precision in "${precisions[@]}"; do
    for batch in 8 64; do
      out="$work/run"
      rm -rf "$out"
      args=("$repo/jobs/catalog/bench.ini" "catalog.source=$ccp/photos" "catalog.limit=128"
            "model.checkpoint=$checkpoint" "model.batch=$batch" "model.threads=2"
            "output.dir=$out")
      [[ -n $precision ]] && args+=("model.precision=$precision")
      /usr/bin/time -f '%M' -o "$work/rss" "$build/parse_catalog" "${args[@]}" >"$work/log" 2>&1 \
        || { cat "$work/log" >&2; exit 1; }
      echo "| $build | ${precision:-fp32 (only)} | $batch | $(( $(cat "$work/rss") / 1024 )) |"
    done
  done
done
