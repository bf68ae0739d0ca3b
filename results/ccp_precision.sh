#!/usr/bin/env bash
# fp32 against bf16 mixed precision on real data: the same 20-epoch CCP 4-class training
# (ResNet18 U-Net at 192x128, the same seed, data order and augmentation) in each precision,
# then the validation mIoU of each (excluding background; the last epoch's and the best).
# Prints a markdown report; the per-epoch lines of both runs go to WORK_DIR.
#
#   results/ccp_precision.sh [WORK_DIR [TRAIN_LIMIT]]    (CCP_DIR: the CCP copy)
#   BUILD_DIR: the build (default build); TRAIN_LIMIT: training images (default 0 = all)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${BUILD_DIR:-$repo/build}")
work=$(realpath -m "${1:-$repo/runs/ccp_precision}")
limit=${2:-0}
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
mkdir -p "$work"
dataset="$work/ccp4_192x128.h5"
[[ -f $dataset ]] || "$build/ingest" ccp --root "$ccp" --out "$dataset" --height 192 --width 128 \
  --labels ccp4 >"$work/ingest.log"

echo "# CCP 4-class, ResNet18 U-Net 192x128, 20 epochs: fp32 against bf16"
echo
echo "Command: \`results/ccp_precision.sh $* \` ($(date -u +%Y-%m-%d), build $(git -C "$repo" rev-parse --short HEAD))"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores;" \
  "flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16\|amx_tile' | sort -u | tr '\n' ' ')"
echo
echo "| precision | train images | epochs | last train loss | last val mIoU | best val mIoU | train img/s (median epoch) | seconds |"
echo "|---|---|---|---|---|---|---|---|"
# the values of one key over the epoch lines in $epochs
field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$epochs"; }
for precision in fp32 bf16; do
  run="$work/$precision"
  start=$(date +%s)
  "$build/train" "$repo/jobs/ccp_r18_small.ini" "data.dataset=$dataset" "data.limit=$limit" \
    data.val_limit=0 train.epochs=20 train.lr=1e-3 train.warmup=0.1 train.threads=2 \
    "model.precision=$precision" "checkpoint.dir=$run" checkpoint.resume=no >"$work/$precision.log"
  seconds=$(( $(date +%s) - start ))
  epochs="$work/$precision.epochs"
  grep '^epoch ' "$work/$precision.log" | sed 's/^epoch \([0-9]*\)\/[0-9]* /epoch \1 /' >"$epochs"
  count=$(wc -l <"$epochs")
  median_rate=$(field train_img_s | sort -g | sed -n "$(( (count + 1) / 2 ))p")
  printf '| %s | %s | %d | %.4f | %.4f | %.4f | %.1f | %d |\n' "$precision" "${limit/#0/all}" \
    "$count" "$(field train_loss | tail -1)" "$(field val_miou | tail -1)" \
    "$(field val_miou | sort -g | tail -1)" "$median_rate" "$seconds"
done
echo
echo "Per-epoch lines: $work/fp32.log, $work/bf16.log"
