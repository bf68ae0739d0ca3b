#!/usr/bin/env bash
# The CCP accuracy table of the issue "Extended U-Net" (item 13), at the size and schedule two CPU
# cores train in a session: on ingest's fixed split of the 904 annotated photos (seed 1: train
# 722, val 91, test 91), each run trains one (label map, encoder, branch mode) from scratch with
# the same recipe (AdamW, one-cycle lr 1e-3 with 10% warm-up, batch 8, clip 1, class weights
# background 1 / others 2, flips only) and `evaluate` scores its best.h5 on the test split; an
# injected model is scored also with ground-truth injection. Prints a markdown table.
#
#   results/ccp_table.sh [WORK_DIR [EPOCHS]]      (CCP_DIR: the CCP copy)
#   Environment: BUILD_DIR (default build); RUNS, space-separated LABELS:ARCH:BRANCHES
#   (default "ccp4:r34:none ccp4:r34:injected ccp4:vgg16:none ccp_garment:r34:none
#   ccp_garment:r34:injected ccp_garment:vgg16:none"); HEIGHT, WIDTH (default 192, 128);
#   THREADS (train.threads, default 0 = all cores); PRECISION (default auto).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${BUILD_DIR:-$repo/build}")
work=$(realpath -m "${1:-$repo/runs/ccp_table}")
epochs=${2:-12}
runs=${RUNS:-ccp4:r34:none ccp4:r34:injected ccp4:vgg16:none ccp_garment:r34:none ccp_garment:r34:injected ccp_garment:vgg16:none}
height=${HEIGHT:-192}
width=${WIDTH:-128}
threads=${THREADS:-0}
precision=${PRECISION:-auto}
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
mkdir -p "$work"

dataset_for() {
  local file="$work/$1_${height}x${width}.h5"
  [[ -f $file ]] || "$build/ingest" ccp --root "$ccp" --out "$file" --height "$height" \
    --width "$width" --labels "$1" >"$work/ingest_$1.log"
  echo "$file"
}
value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

echo "# CCP accuracy table: U-Net and Extended U-Net, ${height}x${width}, from scratch, $epochs epochs"
echo
echo "Command: \`RUNS=\"$runs\" results/ccp_table.sh $*\` ($(date -u +%Y-%m-%d)," \
  "build $(git -C "$repo" rev-parse --short HEAD))"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo
echo "| label map | model.arch | model.branches | best val mIoU (epoch) | test mIoU excl. bg | test mIoU incl. bg | test pixel acc. | GT injection: mIoU excl. bg | class branch micro F1 | box mean IoU | train s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for spec in $runs; do
  IFS=: read -r labels arch branches <<<"$spec"
  dataset=$(dataset_for "$labels")
  name="${labels}_${arch}_${branches}"
  run="$work/$name"
  start=$(date +%s)
  "$build/train" "$repo/jobs/ccp_r34.ini" "data.dataset=$dataset" "model.arch=$arch" \
    "model.height=$height" "model.width=$width" "model.branches=$branches" \
    model.inject_blocks=0 "model.precision=$precision" "train.epochs=$epochs" \
    "train.threads=$threads" "checkpoint.dir=$run" checkpoint.resume=no \
    >"$work/$name.train.log"
  seconds=$(($(date +%s) - start))
  extra=()
  [[ $branches == injected ]] && extra=(--ground-truth-injection)
  log="$work/$name.evaluate.log"
  "$build/evaluate" --checkpoint "$run/best.h5" --data "$dataset" --split test \
    --threads "$threads" --precision "$precision" "${extra[@]}" >"$log"
  best=$(sed -n 's/^done: .* best val_miou \([0-9.]*\).*/\1/p' "$work/$name.train.log")
  best_epoch=$(awk -v b="$best" '$1 == "epoch" && index($0, "val_miou " b) { split($2, e, "/"); print e[1]; exit }' "$work/$name.train.log")
  gt=$(value gt_miou_excluding_background "$log")
  echo "| $labels | $arch | $branches | $best ($best_epoch) | $(value miou_excluding_background "$log") |" \
    "$(value miou_including_background "$log") | $(value pixel_accuracy "$log") | ${gt:--} |" \
    "$(value class_branch_micro_f1 "$log" || true) | $(value box_branch_mean_iou "$log" || true) | $seconds |"
done
