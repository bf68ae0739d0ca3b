#!/bin/bash
# bench_gpu.sh BUILD BATCH PYTHON: ResNet34 U-Net 288x192, bf16, train and inference at one batch
# size, the engines alternated in one run: C without CUDA graphs once (batch 64), two rounds of C and
# PyTorch eager AMP channels_last, then torch.compile(max-autotune) once (its compilation in the
# warm-up steps, cached for the next batch size). One line per run, as bench and
# tests/twin/bench_torch.py print them.
set -u
BUILD=$1 BATCH=$2 PYTHON=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMMON="--arch r34 --height 288 --width 192 --batch $BATCH --warmup 3 --steps 10 --infer-batches 10"
export TORCHINDUCTOR_CACHE_DIR=$BUILD/inductor-cache
status=0
# the C engine without CUDA graphs once (at batch 64 only, for time), to show what they bring
if [ "$BATCH" = 64 ]; then
  "$BUILD/bench" $COMMON --backend cuda --precision bf16 --graphs 0 || status=1
fi
for round in 1 2; do
  "$BUILD/bench" $COMMON --backend cuda --precision bf16 || status=1
  "$PYTHON" "$ROOT/tests/twin/bench_torch.py" $COMMON --device cuda --bf16 --channels-last \
    2>/dev/null || status=1
done
timeout 150 "$PYTHON" "$ROOT/tests/twin/bench_torch.py" $COMMON --device cuda --bf16 \
  --channels-last --compile max-autotune 2>"$BUILD/compile.log" ||
  echo "torch.compile(max-autotune): did not finish within 150 s or failed: $(tail -2 "$BUILD/compile.log")"
exit $status
