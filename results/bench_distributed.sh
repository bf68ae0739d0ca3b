#!/usr/bin/env bash
# Training img/s on real CCP images with 1 rank x 2 threads x batch 8 and 2 ranks x 1 thread x
# batch 4 (the same global batch of 8), ResNet34 U-Net at 288x192: the epoch lines' train_img_s
# (training steps only, validation excluded), epochs 2..N so that primitive creation is left out.
#   results/bench_distributed.sh [EPOCHS=3]     (BUILD_DIR, CCP_DIR as for the tests)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${BUILD_DIR:-$repo/build}" && pwd)
ccp=${CCP_DIR:-$repo/../shared/data/ccp}
epochs=${1:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)

"$build/ingest" ccp --root "$ccp" --out "$work/ccp.h5" --height 288 --width 192 --limit 96 >/dev/null
cat >"$work/job.ini" <<JOB
[data]
dataset = $work/ccp.h5
limit = 64
val_limit = 8
[model]
arch = r34
[train]
epochs = $epochs
[checkpoint]
dir = $work/run
resume = no
JOB

echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), nproc $(nproc), $(date -u +%FT%RZ)"
echo "- load before: $(uptime)"
echo
echo "| ranks x threads x batch | epoch | train img/s |"
echo "|---|---:|---:|"
report() {
  grep '^epoch ' | awk -v label="$1" '{for (i = 1; i < NF; i++) if ($i == "train_img_s") rate = $(i + 1);
    split($2, e, "/"); if (e[1] > 1) printf "| %s | %s | %s |\n", label, e[1], rate}'
}
"$build/train" "$work/job.ini" train.batch=8 train.threads=2 | report "1 x 2 x 8"
"${mpirun[@]}" -np 2 "$build/train" "$work/job.ini" train.batch=4 train.threads=1 \
  checkpoint.dir="$work/run2" | report "2 x 1 x 4"
echo
echo "- load after: $(uptime)"
