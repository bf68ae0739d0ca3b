#!/bin/bash
# The prepared GPU check (README "GPU check"): on a machine with an NVIDIA GPU, the CUDA toolkit
# (nvcc, cmake) and a Python with PyTorch 2.x whose nvidia-* wheels carry cuDNN, cuBLAS and NCCL,
# with no package manager, no network and no HDF5/MPI/oneDNN, in one go and in under 8 minutes:
#   1. records the facts: GPU, driver, nvcc, cmake, torch, cuDNN/cuBLAS/NCCL found where;
#   2. builds the GPU check subset (-DFP_GPU_CHECK_BUILD=ON: CUDA backend, model, bench, tests);
#   3. runs the GPU tests: every op's gradient check on CUDA (also under compute-sanitizer when it
#      works there), the inference-model check, and the C engine on the GPU against the PyTorch
#      twin in f32 (TF32 off), bf16 and fp16 (loss scale 2^10), and an fp16 bench run; then
#      train, evaluate and parse_catalog end to end from the bundle (tests/gpu/pipeline.sh):
#      evaluate's and parse_catalog's predictions on the GPU against the CPU's, and
#      parse_catalog's throughput from JPEG to HDF5;
#   4. benchmarks ResNet34 U-Net 288x192, batch 64 and 128, train and inference, bf16: C against
#      PyTorch eager AMP channels_last (cudnn.benchmark), alternated in one run, C's inference
#      with batch norm unfolded (bench --fold 0) once, then with the time left torch.compile,
#      modes default and max-autotune (batch 64, then batch 128 in the last that finished: one
#      failing is reported, both failing counted); and the GPU's bf16
#      matrix-product rate;
#   5. writes everything to one report, $OUT/gpu_report.md (else build-gpu/gpu_report.md), to be
#      committed as results/gpu_<date>_<gpu>.md.
# Usage: tests/gpu/run.sh [--quick | --bench]
#   --quick: 1-3 only, no benchmark; --bench: 1, 2 (a no-op where the build is there) and 4 only,
#   its report $OUT/gpu_bench.md. Where one call may run out of time, --quick then, at once (a
#   machine stays warm for seconds), --bench in a second call on the same machine.
# Every step's limit is cut to what is left of FP_GPU_TIME_LIMIT (seconds for the whole run,
# default 570: one device call of 600 s; set it from the device time left when that is less); a
# step with under 20 s left is not run, said in the report and counted as failed.
# Environment: PYTHON (default python3), CUDA_HOME (default: nvcc's), FP_GPU_BUILD (build dir),
# FP_COMMIT (the commit to name in the report where the tree has no .git), FP_GPU_BUNDLE (the
# pipeline bundle, default .gpu-bundle/pipeline.tar.xz: make it with tests/gpu/bundle.sh on a
# machine with our Debian packages and carry it along).
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
BUILD=${FP_GPU_BUILD:-$ROOT/build-gpu}
REPORT_DIR=${OUT:-$BUILD}
mkdir -p "$BUILD" "$REPORT_DIR"
REPORT=$REPORT_DIR/gpu_report.md
TESTS=1 BENCH=1
case "${1:-}" in
  --quick) BENCH=0 ;;
  --bench) TESTS=0 REPORT=$REPORT_DIR/gpu_bench.md ;;
  "") ;;
  *) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
START=$(date +%s)
TIME_LIMIT=${FP_GPU_TIME_LIMIT:-570}
failures=0

say() { echo "$*" | tee -a "$REPORT"; }
elapsed() { echo $(($(date +%s) - START)); }
# step NAME TIMEOUT COMMAND...: runs it, its output into the report in a code block; TIMEOUT is
# cut to what is left of TIME_LIMIT (10 s kept for the summary); exit 125 when not run for time
step() {
  local name=$1 limit=$2 left=$((TIME_LIMIT - $(elapsed) - 10))
  shift 2
  say ""
  if [ $left -lt 20 ]; then
    say "### $name: NOT RUN: $(elapsed) s of the $TIME_LIMIT s (FP_GPU_TIME_LIMIT) spent"
    : >"$BUILD/step.log"
    return 125
  fi
  [ "$limit" -gt $left ] && limit=$left
  say "### $name ($(elapsed) s into the run, limit $limit s)"
  say '```'
  local rc=0
  timeout "$limit" "$@" >"$BUILD/step.log" 2>&1 || rc=$?
  tail -c 12000 "$BUILD/step.log" | tee -a "$REPORT"
  say '```'
  if [ $rc -eq 0 ]; then
    say "result: ok"
  elif [ $rc -eq 124 ]; then
    say "result: TIMED OUT after $limit s"
  else
    say "result: FAILED (exit $rc)"
  fi
  return $rc
}

: >"$REPORT"
# FP_COMMIT names the commit where the tree travels without .git (the device tool's copy)
COMMIT=${FP_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}
say "# GPU check report ($(date -u +%Y-%m-%dT%H:%MZ), commit $COMMIT)"
say ""
say "## Machine"
say '```'
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 |
  tee -a "$REPORT"
NVCC=$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")
"$NVCC" --version 2>&1 | tail -2 | tee -a "$REPORT"
cmake --version | head -1 | tee -a "$REPORT"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)" | tee -a "$REPORT"
"$PYTHON" - <<'PY' 2>&1 | tee -a "$REPORT"
import torch
nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "-"
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "nccl", nccl)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
import os, sysconfig  # torch.compile's Triton builds C stubs against Python.h
print("Python.h", "found" if os.path.exists(os.path.join(sysconfig.get_paths()["include"],
      "Python.h")) else "MISSING: torch.compile will fail")
PY
say '```'

# cuDNN, cuBLAS and NCCL: from the CUDA prefix if it has them, else from the nvidia-* wheels,
# found by their headers under the `nvidia` namespace package: the CUDA 13 wheels put cuBLAS (and
# the runtime) in nvidia/cu13/, cuDNN in nvidia/cudnn/, NCCL in nvidia/nccl/. A prefix of links
# (include/, lib64/) gives CMake one FP_CUDA_ROOT with unversioned names; the first file of a
# name wins, so the toolkit's own headers and runtime are never replaced by a wheel's.
CUDA_TOOLKIT=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
PREFIX=$BUILD/cuda-prefix
rm -rf "$PREFIX"
mkdir -p "$PREFIX/include" "$PREFIX/lib64"
link_dir() { # link_dir INCLUDE_DIR LIB_DIR
  [ -d "$1" ] && for f in "$1"/*; do ln -s "$f" "$PREFIX/include/" 2>/dev/null; done
  [ -d "$2" ] && for f in "$2"/lib*.so*; do
    ln -s "$f" "$PREFIX/lib64/" 2>/dev/null
    base=$(basename "$f")
    ln -s "$f" "$PREFIX/lib64/${base%%.so*}.so" 2>/dev/null
  done
  return 0
}
link_dir "$CUDA_TOOLKIT/include" "$CUDA_TOOLKIT/lib64"
LIB_PATH=$CUDA_TOOLKIT/lib64
WHEEL_DIRS=$("$PYTHON" -c "import nvidia; print('\n'.join(nvidia.__path__))" 2>/dev/null)
for header in cudnn.h cublas_v2.h nccl.h; do
  [ -e "$CUDA_TOOLKIT/include/$header" ] && continue
  found=$(for dir in $WHEEL_DIRS; do ls "$dir"/*/include/"$header" 2>/dev/null; done | head -1)
  if [ -z "$found" ]; then
    say "no $header in $CUDA_TOOLKIT/include nor in an nvidia-* wheel of $PYTHON"
    continue
  fi
  wheel=$(dirname "$(dirname "$found")")
  link_dir "$wheel/include" "$wheel/lib"
  LIB_PATH=$LIB_PATH:$wheel/lib
  say "$header: from the wheel in $wheel"
done
export LD_LIBRARY_PATH=$PREFIX/lib64:$LIB_PATH:${LD_LIBRARY_PATH:-}
# nvJPEG (issue 9's GPU decoding "where the library is present"): neither this project's CUDA
# install nor PyTorch's wheels were seen to carry it; the report says whether this machine does
nvjpeg=$(for dir in "$CUDA_TOOLKIT" $WHEEL_DIRS; do find "$dir" -name 'libnvjpeg.so*' 2>/dev/null
  done | head -1)
say "nvJPEG: ${nvjpeg:-not found in $CUDA_TOOLKIT nor in the nvidia-* wheels}"

step "configure and build (FP_GPU_CHECK_BUILD)" 240 bash -c "
  cmake -S '$ROOT' -B '$BUILD' -G Ninja -DFP_GPU_CHECK_BUILD=ON -DFP_CUDA_ROOT='$PREFIX' \
    -DFP_NVCC='$NVCC' -DCMAKE_CUDA_ARCHITECTURES=90 -DFP_PYTHON=\"\$(command -v $PYTHON)\" \
    >'$BUILD/configure.log' 2>&1 || { cat '$BUILD/configure.log'; exit 1; }
  grep -E 'CUDA toolkit|GPU check' '$BUILD/configure.log'
  ninja -C '$BUILD' >'$BUILD/build.log' 2>&1 || {
    grep -m 10 -B 2 -A 6 -E 'error|FAILED' '$BUILD/build.log'; exit 1; }
  tail -3 '$BUILD/build.log'" || { say "build failed: nothing else can run"; exit 1; }

export FP_TEST_BACKEND=cuda
if [ $TESTS -eq 1 ]; then
  # Up to 4 tests at once, the cores shared out: the twins' float64 references are generated on
  # the CPU while other tests use the GPU (on 2 cores one at a time is faster: measured).
  JOBS=$(($(nproc) / 4))
  [ $JOBS -lt 1 ] && JOBS=1
  [ $JOBS -gt 4 ] && JOBS=4
  step "GPU tests (ctest -L gpu, $JOBS at a time)" 240 env OMP_NUM_THREADS=$(($(nproc) / JOBS)) \
    ctest --test-dir "$BUILD" -L gpu -j $JOBS --output-on-failure || failures=$((failures + 1))
  # a C test skips (77) when the CUDA backend cannot open: on this machine that is a failure
  if grep -q "(Skipped)" "$BUILD/step.log"; then
    say "GPU tests SKIPPED: the CUDA backend could not open here (see the reasons above)"
    failures=$((failures + 1))
  fi
  # fp16 training and inference at the benchmark's sizes run (the twins above check the numbers)
  step "fp16 mixed precision runs (bench r18 64x64)" 60 "$BUILD/bench" \
    --backend cuda --precision fp16 --arch r18 --height 64 --width 64 --batch 4 --warmup 1 \
    --steps 2 --infer-batches 2 || failures=$((failures + 1))
  # train, evaluate and parse_catalog end to end, from the bundle of tests/gpu/bundle.sh (this
  # machine has no HDF5, MPI or image libraries to build them with)
  BUNDLE=${FP_GPU_BUNDLE:-$ROOT/.gpu-bundle/pipeline.tar.xz}
  if [ -f "$BUNDLE" ]; then
    step "pipeline: train, evaluate, parse_catalog from the bundle (tests/gpu/pipeline.sh)" 180 \
      env PYTHON="$PYTHON" "$ROOT/tests/gpu/pipeline.sh" "$BUNDLE" "$BUILD/pipeline" ||
      failures=$((failures + 1))
    made_at=$(sed -n 's/^commit \([^ ]*\).*/\1/p' "$BUILD/step.log" | head -1)
    [ "$made_at" = "$COMMIT" ] ||
      say "NOTE: the bundle was made at commit ${made_at:-?}, this tree is $COMMIT:" \
        "its train and parse_catalog are that commit's"

  else
    say ""
    say "### pipeline: NOT RUN: no bundle at $BUNDLE"
    say "(tests/gpu/bundle.sh makes it; name .gpu-bundle in the device tool's carry)"
    failures=$((failures + 1))
  fi
  if command -v compute-sanitizer >/dev/null; then
    # gVisor machines refuse the tool ("Device not supported"): said, not counted as a failure.
    # API errors are left to the test's own checks (every call of ours is checked): cuDNN's
    # algorithm searches probe kernels that may refuse a shape, which is not an error of ours.
    step "gradient check under compute-sanitizer memcheck" 120 \
      compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 3 \
      "$BUILD/tests/test_gradcheck" || {
      if grep -q "Device not supported" "$BUILD/step.log"; then
        say "compute-sanitizer cannot use the GPU on this machine: not run, not counted"
      else
        failures=$((failures + 1))
      fi
    }
  fi
fi
if [ $BENCH -eq 1 ]; then
  step "bf16 matrix-product rate (torch, 8192^3, mean of 10 after 3 warm-ups)" 60 "$PYTHON" -c "
import torch, time
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(10): a @ b
torch.cuda.synchronize(); s = (time.perf_counter() - t) / 10
print('bf16_matmul_tflops=%.1f' % (2 * 8192**3 / s / 1e12))" || failures=$((failures + 1))
  for batch in 64 128; do
    step "benchmark r34 288x192 batch $batch bf16: C and PyTorch eager AMP channels_last" 200 \
      "$ROOT/tests/gpu/bench_gpu.sh" "$BUILD" "$batch" "$PYTHON" || failures=$((failures + 1))
  done
  # what folding batch norm into the convolutions brings to inference (bench's inference model
  # folds it, as parse_catalog's does): the same batches unfolded, training cut to one step
  step "inference r34 288x192 batch 64 bf16 with batch norm unfolded (bench --fold 0)" 90 \
    "$BUILD/bench" --arch r34 --height 288 --width 192 --batch 64 --warmup 0 --steps 1 \
    --infer-batches 10 --backend cuda --precision bf16 --fold 0 || failures=$((failures + 1))
  # torch.compile last, with what is left, at batch 64 first: mode default (compiles faster),
  # then max-autotune (every convolution and matrix product tuned: its compilation has never
  # been timed on this model), then batch 128 in the last mode that finished
  compiled=
  for mode in default max-autotune; do
    step "torch.compile($mode) r34 288x192 batch 64 bf16" 240 \
      "$ROOT/tests/gpu/bench_gpu.sh" "$BUILD" 64 "$PYTHON" "$mode" && compiled=$mode
  done
  if [ -n "$compiled" ]; then
    step "torch.compile($compiled) r34 288x192 batch 128 bf16" 240 \
      "$ROOT/tests/gpu/bench_gpu.sh" "$BUILD" 128 "$PYTHON" "$compiled" ||
      failures=$((failures + 1))
  else
    failures=$((failures + 1))
  fi
fi
say ""
say "## Summary: $failures failed step(s), $(elapsed) s in all"
exit $((failures > 0))
