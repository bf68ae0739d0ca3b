#!/usr/bin/env bash
# Plain U-Net against the Extended U-Net (issue "Extended U-Net", item 13, reduced to what two
# CPU cores train in minutes): CCP 4-class, ResNet18 U-Net at 192x128 from scratch, the same seed,
# data order and flips-only augmentation, once per branch mode, each scored with `evaluate` on
# the held-out test split (`ingest`'s default 10% of the annotated photos). The injected model is
# scored also with ground-truth injection. Prints a markdown table; logs go to WORK_DIR.
#
#   results/ccp_extended_compare.sh [WORK_DIR [EPOCHS]]      (CCP_DIR: the CCP copy)
#   Environment: BUILD_DIR (default build), MODES (default "none trained injected"; also
#   injected_tags: injected, with CCP's 1094 tag-only photos' train split as data.tags_dataset),
#   THREADS (train.threads, default 0 = all cores), PRECISION (default auto).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${BUILD_DIR:-$repo/build}")
work=$(realpath -m "${1:-$repo/runs/ccp_extended_compare}")
epochs=${2:-15}
modes=${MODES:-none trained injected}
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
mkdir -p "$work"
dataset="$work/ccp4_192x128.h5"
[[ -f $dataset ]] || "$build/ingest" ccp --root "$ccp" --out "$dataset" --height 192 --width 128 \
  --labels ccp4 >"$work/ingest.log"

echo "# CCP 4-class, ResNet18 U-Net 192x128 from scratch, $epochs epochs: plain against Extended"
echo
echo "Command: \`results/ccp_extended_compare.sh $*\` (MODES=\"$modes\"; $(date -u +%Y-%m-%d)," \
  "build $(git -C "$repo" rev-parse --short HEAD))"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "Dataset: $(grep -m1 'annotated images' "$work/ingest.log" 2>/dev/null || echo "$dataset")"
echo
echo "| model.branches | best val mIoU (epoch) | test mIoU excl. bg | test mIoU incl. bg | test pixel acc. | with GT injection: mIoU excl. bg | class branch micro F1 | box mean IoU | train s |"
echo "|---|---|---|---|---|---|---|---|---|"
value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
for mode in $modes; do
  run="$work/$mode"
  branches=$mode
  tags=()
  if [[ $mode == injected_tags ]]; then
    branches=injected
    tags=("data.tags_dataset=$work/ccp4_192x128_tags.h5")
  fi
  start=$(date +%s)
  "$build/train" "$repo/jobs/ccp_r18_small.ini" "data.dataset=$dataset" data.limit=0 \
    data.val_limit=0 "train.epochs=$epochs" train.lr=1e-3 train.warmup=0.1 \
    "train.threads=${THREADS:-0}" "model.precision=${PRECISION:-auto}" "model.branches=$branches" \
    model.inject_blocks=0 "${tags[@]}" "checkpoint.dir=$run" checkpoint.resume=no \
    >"$work/$mode.train.log"
  seconds=$(($(date +%s) - start))
  extra=()
  [[ $branches == injected ]] && extra=(--ground-truth-injection)
  "$build/evaluate" --checkpoint "$run/best.h5" --data "$dataset" --split test \
    --threads "${THREADS:-0}" --precision "${PRECISION:-auto}" "${extra[@]}" \
    >"$work/$mode.evaluate.log"
  log="$work/$mode.evaluate.log"
  best=$(sed -n 's/^done: .* best val_miou \([0-9.]*\).*/\1/p' "$work/$mode.train.log")
  best_epoch=$(awk -v b="$best" '$1 == "epoch" && index($0, "val_miou " b) { split($2, e, "/"); print e[1]; exit }' "$work/$mode.train.log")
  gt=$(value gt_miou_excluding_background "$log")
  echo "| $mode | $best ($best_epoch) | $(value miou_excluding_background "$log") |" \
    "$(value miou_including_background "$log") | $(value pixel_accuracy "$log") | ${gt:--} |" \
    "$(value class_branch_micro_f1 "$log" || true) | $(value box_branch_mean_iou "$log" || true) | $seconds |"
done
