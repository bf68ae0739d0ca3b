#!/bin/bash
# The pipeline part of the GPU check: `train`, `evaluate` and `parse_catalog` end to end from the
# bundle of tests/gpu/bundle.sh (programs built elsewhere, with their HDF5, Open MPI, oneDNN and
# image libraries and the data), on a machine that has none of those libraries:
#   0. the NCCL collective test (tests/collective) with one rank, on the GPU's memory;
#   1. train: ResNet34 U-Net 288x192 on the bundle's 64 CCP images, bf16, CUDA graphs, 3 epochs;
#   2. evaluate of that checkpoint over the 64 images on the CPU (fp32) and on the GPU (fp32,
#      bf16): the confusion matrices must count the same labelled pixels and show at least
#      99.9 % (fp32) and 95 % (bf16) of them predicted as on the CPU, the bounds of 3 below;
#   3. parse_catalog of 64 photos with that checkpoint on the CPU (fp32) and on the GPU (fp32,
#      then bf16); compare_masters holds the GPU's masks against the CPU's: fp32 must agree on
#      at least 99.9 % of the photo pixels, bf16 on at least 95 %. Why: only near-ties of the top
#      two classes can flip. Measured on the CPU with this bundle (train 1 epoch on 2 cores),
#      bf16 against fp32 flips 0.71 % of the pixels (bf16 rounding, ~1e-2 relative); fp32 on
#      two backends differs by summation order only (~1e-6 relative, the twins' bound is 1e-3),
#      which flips ~1e-5 of them: 99.9 % leaves two orders of magnitude, and 95 % leaves a GPU's
#      bf16 seven times the CPU's flips while a wrong layout or normalisation agrees on far less;
#   4. parse_catalog's throughput from JPEG to HDF5: 10,240 photos (the 256, linked 40 times
#      under other names), bf16, batch 128, with all the CPU cores and with half of them.
# Without a GPU (the rehearsal) it runs 1 to 3 on the CPU only: the bundle's self-containment.
# A GPU run that fails with CUDA graphs counts as a failure and is run again without them, so
# that one fault there leaves the rest measured.
# Usage: tests/gpu/pipeline.sh BUNDLE.tar.xz WORK_DIR
# The CUDA libraries must already be on LD_LIBRARY_PATH (run.sh puts them there).
set -u
BUNDLE=$1 WORK=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK" && mkdir -p "$WORK"
# xz where the machine has it, else Python's lzma (a bare root may have no xz)
if command -v xz >/dev/null; then
  xz -dc "$BUNDLE" | tar -C "$WORK" -xf -
else
  "${PYTHON:-python3}" -c 'import sys, tarfile
safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **safe)' "$BUNDLE" "$WORK"
fi || { echo "cannot unpack $BUNDLE"; exit 1; }
cat "$WORK/BUNDLE"
have=$(ldd --version | head -1 | grep -oE '[0-9]+\.[0-9]+$')
need=$(awk '/^needs glibc/ {print $3}' "$WORK/BUNDLE")
echo "this machine: glibc $have, $(nproc) cores"
if [ "$(printf '%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "FAILED: the bundle needs glibc $need, this machine has $have: make it on an older system"
  exit 1
fi
# The gcc runtime of the bundle only where this machine has none (a newer one serves both).
runtime=""
for library in "$WORK"/gcc-runtime/*; do
  ldconfig -p | grep -q "$(basename "$library")" || runtime=$WORK/gcc-runtime
done
# The bundle's libraries for its programs only: the machine's own tools keep the machine's.
BUNDLE_LIBRARIES=$WORK/lib${runtime:+:$runtime}:${LD_LIBRARY_PATH:-}
bundled() { LD_LIBRARY_PATH=$BUNDLE_LIBRARIES "$@"; }
# Open MPI as a singleton process: its components from the bundle, no launcher daemon.
export OMPI_MCA_mca_base_component_path=$WORK/openmpi-plugins
export OMPI_MCA_mca_base_component_show_load_errors=0
export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=sm
BIN=$WORK/bin
CORES=$(nproc)
GPU=0
nvidia-smi >/dev/null 2>&1 && GPU=1
failures=0
section() { echo; echo "== $* =="; }
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

section "NCCL collective on GPU buffers: test_collective_nccl, one rank (a singleton process)"
# Every collective the engine uses (sums, means started and waited on in any order, broadcasts,
# the order against the caller's stream); more ranks need more GPUs than this machine has.
expected=0
[ $GPU = 0 ] && expected=77 # without a GPU it must load, then skip
status=0
bundled "$BIN/test_collective_nccl" 1 || status=$?
[ $status = $expected ] || fail "test_collective_nccl exited $status, expected $expected"

GRAPHS=true # CUDA graphs in train and parse_catalog, until a run with them fails
backend=cuda precision=bf16 epochs=3
[ $GPU = 0 ] && backend=cpu precision=fp32 epochs=1
run_train() {
  bundled "$BIN/train" "$ROOT/jobs/ccp_r34.ini" data.dataset="$WORK/data/ccp_288x192.h5" \
    model.backend=$backend model.precision=$precision train.epochs=$epochs train.batch=16 \
    train.log_every=4 train.threads="$CORES" train.graphs=$GRAPHS checkpoint.dir="$WORK/run" \
    checkpoint.resume=no
}
section "train: r34 288x192, the bundle's 64 images, batch 16, $epochs epoch(s)," \
  "$backend $precision"
if ! run_train; then
  [ $GPU = 1 ] || { echo "FAILED: train: nothing else can run"; exit 1; }
  fail "train with CUDA graphs; again without them (train.graphs=false):"
  GRAPHS=false
  run_train || { echo "FAILED: train: without its checkpoint nothing else can run"; exit 1; }
fi
CHECKPOINT=$WORK/run/last.h5

# catalog_job NAME SOURCE LIMIT BATCH BACKEND PRECISION THREADS
catalog_job() {
  cat >"$WORK/$1.ini" <<EOF
[catalog]
source = $2
limit = $3
[model]
checkpoint = $CHECKPOINT
height = 288
width = 192
batch = $4
backend = $5
precision = $6
threads = $7
graphs = $GRAPHS
[output]
dir = $WORK/out_$1
[schedule]
chunk = 1024
progress_seconds = 5
EOF
  echo "$WORK/$1.ini"
}
parse() { # parse NAME SOURCE LIMIT BATCH BACKEND PRECISION THREADS
  local job
  job=$(catalog_job "$@")
  local start end
  start=$(date +%s.%N)
  bundled "$BIN/parse_catalog" "$job" >"$WORK/$1.log" 2>&1 || { tail -20 "$WORK/$1.log"; return 1; }
  end=$(date +%s.%N)
  echo "-- parse_catalog $1: $5 $6, batch $4, $7 threads: $(awk -v s="$start" -v e="$end" \
    'BEGIN {printf "%.1f", e - s}') s from start to exit; its summary (all ranks):"
  grep -E '^rank |^ *all |^stages|^masks:' "$WORK/$1.log"
}
parse_gpu() { # as parse; a failure with CUDA graphs is counted and run again without them
  parse "$@" && return 0
  [ $GRAPHS = true ] || return 1
  fail "parse_catalog $1 with CUDA graphs; again without them (model.graphs=false):"
  GRAPHS=false
  parse "$@"
}

# evaluate_on NAME BACKEND PRECISION: the checkpoint over all 64 images, its confusion matrix to
# confusion_NAME.csv; prints the summary
evaluate_on() {
  bundled "$BIN/evaluate" --checkpoint "$CHECKPOINT" --data "$WORK/data/ccp_288x192.h5" \
    --split all --batch 16 --threads "$CORES" --backend "$2" --precision "$3" \
    --confusion "$WORK/confusion_$1.csv" >"$WORK/evaluate_$1.log" 2>&1 ||
    { tail -20 "$WORK/evaluate_$1.log"; return 1; }
  grep -E '^evaluate:|^pixel_accuracy|^miou_|^labelled_pixels' "$WORK/evaluate_$1.log"
}
# predictions_agree BASE OTHER MINIMUM: both confusion matrices count the same labelled pixels,
# and at least MINIMUM of them kept their predicted class. A pixel predicted differently moves
# one count within its row, so half the L1 distance of the two count matrices is a lower bound
# on such pixels. MINIMUM as for parse_catalog's masks below: 0.999 fp32, 0.95 bf16.
predictions_agree() {
  awk -F, -v minimum="$3" '
    FNR == 1 {file++; row = 0; in_counts = 1; next}
    in_counts && $0 == "" {in_counts = 0}
    in_counts {row++; for (k = 2; k <= NF; k++) {count[file, row, k] = $k; total[file] += $k}}
    END {
      for (key in count) {split(key, at, SUBSEP); if (at[1] == 1) {
        d = count[key] - count[2, at[2], at[3]]; moved += d < 0 ? -d : d}}
      moved /= 2
      kept = total[1] > 0 ? 1 - moved / total[1] : 0
      printf "confusion counts: %d and %d labelled pixels, at least %d predicted differently: " \
        "kept %.6f (at least %s)\n", total[1], total[2], moved, kept, minimum
      exit !(total[1] > 0 && total[1] == total[2] && kept >= minimum)
    }' "$WORK/confusion_$1.csv" "$WORK/confusion_$2.csv"
}

section "evaluate: the checkpoint on the CPU (fp32) and the GPU (fp32, bf16), predictions compared"
evaluate_on cpu_fp32 cpu fp32 || fail "evaluate on the CPU"
if [ $GPU = 1 ]; then
  for precision in fp32 bf16; do
    minimum=0.999
    [ $precision = bf16 ] && minimum=0.95
    evaluate_on gpu_$precision cuda $precision ||
      { fail "evaluate on the GPU ($precision)"; continue; }
    predictions_agree cpu_fp32 gpu_$precision $minimum ||
      fail "evaluate: GPU $precision against the CPU"
  done
else
  evaluate_on cpu_fp32_again cpu fp32 && predictions_agree cpu_fp32 cpu_fp32_again 1 ||
    fail "evaluate: the CPU against itself"
fi

section "parse_catalog: 64 photos on the CPU (fp32) and the GPU (fp32, bf16), masks compared"
PHOTOS=$WORK/data/photos
CPU_RESULT=$WORK/out_cpu_fp32/master.h5
parse cpu_fp32 "$PHOTOS" 64 16 cpu fp32 "$CORES" || fail "parse_catalog on the CPU"
if [ $GPU = 1 ]; then
  for precision in fp32 bf16; do
    minimum=0.999
    [ $precision = bf16 ] && minimum=0.95
    parse_gpu gpu_$precision "$PHOTOS" 64 16 cuda $precision "$CORES" ||
      { fail "parse_catalog on the GPU ($precision)"; continue; }
    [ -f "$CPU_RESULT" ] || continue # no CPU result to hold it against
    bundled "$BIN/compare_masters" "$CPU_RESULT" "$WORK/out_gpu_$precision/master.h5" $minimum ||
      fail "GPU $precision against the CPU"
  done
else
  parse cpu_fp32_again "$PHOTOS" 64 16 cpu fp32 "$CORES" &&
    bundled "$BIN/compare_masters" "$CPU_RESULT" "$WORK/out_cpu_fp32_again/master.h5" ||
    fail "the CPU against itself"
  echo "no GPU: the GPU runs and the throughput are not run"
fi

if [ $GPU = 1 ]; then
  section "parse_catalog throughput: 10,240 photos, bf16, batch 128"
  mkdir -p "$WORK/many"
  for copy in $(seq -w 1 40); do
    for photo in "$PHOTOS"/*.jpg; do
      ln -s "$photo" "$WORK/many/${copy}_${photo##*/}"
    done
  done
  for threads in "$CORES" $((CORES / 2)); do
    parse_gpu "many_$threads" "$WORK/many" 0 128 cuda bf16 "$threads" || fail "throughput run"
  done
fi
echo
[ $GRAPHS = false ] && echo "CUDA graphs were turned off after a failure with them"
echo "pipeline: $failures failure(s)"
exit $((failures > 0))
