#!/bin/bash
# bench_gpu.sh BUILD BATCH PYTHON [COMPILE_MODE]: ResNet34 U-Net 288x192, bf16, train and
# inference at one batch size. Without COMPILE_MODE: the engines alternated in one run, C without
# CUDA graphs once (batch 64), then two rounds of C and PyTorch eager AMP channels_last. With it:
# PyTorch under torch.compile(mode=COMPILE_MODE) once, compiled in its untimed warm-up (its
# warmup_s), the inductor cache kept in BUILD for the next batch size; its log in BUILD. One line
# per run, as bench and tests/twin/bench_torch.py print them.
set -u
BUILD=$1 BATCH=$2 PYTHON=$3 COMPILE_MODE=${4:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMMON="--arch r34 --height 288 --width 192 --batch $BATCH --warmup 3 --steps 10 --infer-batches 10"
if [ -n "$COMPILE_MODE" ]; then
  log=$BUILD/compile_${COMPILE_MODE}_$BATCH.log
  TORCHINDUCTOR_CACHE_DIR=$BUILD/inductor-cache "$PYTHON" "$ROOT/tests/twin/bench_torch.py" \
    $COMMON --device cuda --bf16 --channels-last --compile "$COMPILE_MODE" 2>"$log" && exit 0
  echo "torch.compile($COMPILE_MODE) failed; the end of $log:"
  tail -5 "$log"
  exit 1
fi
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
exit $status
