#!/usr/bin/env bash
# Which augmentation on a short schedule (issue "Augmentation that can be tuned"): the same
# CCP 4-class training (ResNet18 U-Net at 192x128, the same seed and data order) once per
# augmentation preset, each scored with `evaluate` on the held-out test split (the photos that
# neither training nor checkpoint selection saw: `ingest`'s default 10% of the annotated photos,
# 91 of the 904 in our CCP copy). Prints a markdown table of the test mIoU per preset; logs go to WORK_DIR.
#
#   results/augment_compare.sh [WORK_DIR [EPOCHS [TRAIN_LIMIT]]]      (CCP_DIR: the CCP copy)
#     EPOCHS       training epochs (default 20, the issue's measurement)
#     TRAIN_LIMIT  training images, 0 = the whole train split (default 0)
#   Environment: BUILD_DIR (default build), PRESETS (default "none flip all"), VAL_LIMIT
#   (validation images per epoch, default 0 = all), TEST_LIMIT (test images, default 0 = all),
#   PRECISION (model.precision, default auto), THREADS (train.threads, default 0 = all cores).
#
# Presets (jobs/README.md, [augment]): none = data.augment=false (no augmentation at all);
# flip = horizontal flips with probability 0.5, the rest off (the default); all = flips 0.5
# and rotation, zoom, shift, brightness and contrast on every image (the old default).
# The issue's 20-epoch figures (mIoU including background, 100 test photos): all 75.4,
# none 76.8, and a PyTorch run with flips only 77.9.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${BUILD_DIR:-$repo/build}")
work=$(realpath -m "${1:-$repo/runs/augment_compare}")
epochs=${2:-20}
limit=${3:-0}
presets=${PRESETS:-none flip all}
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
mkdir -p "$work"
dataset="$work/ccp4_192x128.h5"
[[ -f $dataset ]] || "$build/ingest" ccp --root "$ccp" --out "$dataset" --height 192 --width 128 \
  --labels ccp4 >"$work/ingest.log"

echo "# CCP 4-class, ResNet18 U-Net 192x128, $epochs epochs: augmentation presets on the test split"
echo
echo "Command: \`results/augment_compare.sh $*\` (PRESETS=\"$presets\"; $(date -u +%Y-%m-%d)," \
  "build $(git -C "$repo" rev-parse --short HEAD))"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "Dataset: $(grep -m1 'annotated images' "$work/ingest.log" 2>/dev/null || echo "$dataset")"
echo
echo "| preset | train images | epochs | last train loss | test images | test mIoU incl. background | test mIoU excl. background | test pixel accuracy | seconds |"
echo "|---|---|---|---|---|---|---|---|---|"
# the value after `key` on the lines of file $2
value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
# test images: the test split's size from ingest (evaluate's count rounds up to whole batches)
images=$(sed -n 's/.* annotated images -> .*, test \([0-9]*\)).*/\1/p' "$work/ingest.log")
if [[ ${TEST_LIMIT:-0} -gt 0 && ${TEST_LIMIT:-0} -lt $images ]]; then images=$TEST_LIMIT; fi
for preset in $presets; do
  case $preset in
  none) augment=(data.augment=false) ;;
  flip | all) augment=(data.augment=true "augment.preset=$preset") ;;
  *) echo "unknown preset '$preset' (none, flip, all)" >&2; exit 1 ;;
  esac
  run="$work/$preset"
  start=$(date +%s)
  "$build/train" "$repo/jobs/ccp_r18_small.ini" "data.dataset=$dataset" "data.limit=$limit" \
    "data.val_limit=${VAL_LIMIT:-0}" "train.epochs=$epochs" train.lr=1e-3 train.warmup=0.1 \
    "train.threads=${THREADS:-0}" "model.precision=${PRECISION:-auto}" "${augment[@]}" \
    "checkpoint.dir=$run" checkpoint.resume=no >"$work/$preset.train.log"
  "$build/evaluate" --checkpoint "$run/last.h5" --data "$dataset" --split test \
    --limit "${TEST_LIMIT:-0}" --threads "${THREADS:-0}" --precision "${PRECISION:-auto}" \
    >"$work/$preset.test.log"
  seconds=$(($(date +%s) - start))
  test_log="$work/$preset.test.log"
  loss=$(grep '^epoch ' "$work/$preset.train.log" | tail -1 |
    awk '{ for (i = 1; i < NF; i++) if ($i == "train_loss") print $(i + 1) }')
  printf '| %s | %s | %s | %s | %s | %.4f | %.4f | %.4f | %d |\n' "$preset" "${limit/#0/all}" \
    "$epochs" "$loss" "$images" "$(value miou_including_background "$test_log")" \
    "$(value miou_excluding_background "$test_log")" "$(value pixel_accuracy "$test_log")" \
    "$seconds"
done
echo
echo "Logs: $work/<preset>.train.log (per epoch, validation split) and $work/<preset>.test.log" \
  "(the last checkpoint on the test split, per class)."
