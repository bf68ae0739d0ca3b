#!/usr/bin/env bash
# The measurements of results/jpeg_dct_scaling.md: full against DCT-scaled JPEG decode in
# parse_catalog's JPEG sources.
#  1. bench_jpeg_scaling (single thread) over the first 200 CCP photos, letterboxed into 288x192
#     and 192x128: time and difference of the letterboxed pixels per forced scale N/8, then the
#     two code paths (ingest's full decode, parse_catalog's scaled one);
#  2. parse_catalog end to end with BEFORE_BUILD (full decode) and AFTER_BUILD (scaled), one rank
#     of 2 threads, alternating, 2 rounds, on two jobs: jobs/catalog/demo.ini (200 photos, 192x128,
#     ResNet18, 4 classes) with DEMO_CHECKPOINT and jobs/catalog/bench.ini (256 photos, 288x192,
#     ResNet34, 59 classes) with BENCH_CHECKPOINT;
#  3. jpeg_dct_compare.py on the masters of round 1: mask pixels and statistics that differ.
#
#   results/jpeg_dct_scaling.sh BEFORE_BUILD AFTER_BUILD OUT_DIR
# DEMO_CHECKPOINT defaults to runs/ccp_precision/fp32/last.h5 (results/ccp_precision.sh),
# BENCH_CHECKPOINT to runs/mem/ckpt/last.h5 (results/parse_catalog_memory.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -eq 3 ]] || { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
before=$(realpath "$1")
after=$(realpath "$2")
mkdir -p "$3"
out=$(realpath "$3")
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
demo_checkpoint=$(realpath "${DEMO_CHECKPOINT:-$repo/runs/ccp_precision/fp32/last.h5}")
bench_checkpoint=$(realpath "${BENCH_CHECKPOINT:-$repo/runs/mem/ckpt/last.h5}")
python=${PYTHON:-/usr/bin/python3}
cd "$repo"
grep -m1 'model name' /proc/cpuinfo
echo "nproc $(nproc); $(date -u +%FT%TZ)"

mapfile -t photos < <(find "$ccp/photos" -name '*.jpg' | sort | head -200)
for size in "288 192" "192 128"; do
  echo "== bench_jpeg_scaling $size, load $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2086
  "$after/tests/io/bench_jpeg_scaling" $size 5 3 "${photos[@]}"
done

run() { # JOB BUILD TAG CHECKPOINT
  rm -rf "${out:?}/$3"
  echo "== $3 $(date +%T), load before $(cut -d' ' -f1-3 /proc/loadavg)"
  "$2/parse_catalog" "$1" "catalog.source=$ccp/photos" "model.checkpoint=$4" \
    model.precision=fp32 model.threads=2 "output.dir=$out/$3" > "$out/$3.log" 2>&1
  grep -E "^ all|^stages" "$out/$3.log"
}
for round in 1 2; do
  if [[ $round == 1 ]]; then order=(before after); else order=(after before); fi
  for job in demo bench; do
    checkpoint=$demo_checkpoint
    [[ $job == bench ]] && checkpoint=$bench_checkpoint
    for build in "${order[@]}"; do
      dir=$before
      [[ $build == after ]] && dir=$after
      run "jobs/catalog/$job.ini" "$dir" "${job}_${build}_r$round" "$checkpoint"
    done
  done
done
for job in demo bench; do
  echo "== $job: full (before) against scaled (after) decode, round 1"
  "$python" "$repo/results/jpeg_dct_compare.py" "$out/${job}_before_r1/master.h5" \
    "$out/${job}_after_r1/master.h5"
done
