#!/bin/sh
# The CUDA emulator part of the suite (ctest: cuda_emulator, label emulator): builds the project
# again with FP_CUDA_EMULATOR into BUILD_DIR (the CUDA backend's C files and kernels, compiled
# for the host against tests/cuda_emulator instead of the CUDA toolkit, README.md here) and runs
# there the GPU tests of the suite on that backend: every op's gradient check in f32 and bf16,
# the step ops, staged uploads, the class statistics, passes through (emulated) CUDA graphs, the
# PyTorch twins on CUDA in f32 and bf16, the NCCL collective on 1 and 2 ranks (NCCL over MPI)
# and two-rank training against one rank (synchronized batch norm over NCCL). What this cannot
# check (the real libraries' algorithms, concurrency between blocks and streams, speed) stays
# owed to a GPU run (tests/gpu/run.sh).
#   tests/cuda_emulator/run.sh SOURCE_DIR BUILD_DIR [ctest -R regex]
set -eu
source_dir=${1:?usage: run.sh SOURCE_DIR BUILD_DIR [REGEX]}
build=${2:?usage: run.sh SOURCE_DIR BUILD_DIR [REGEX]}
tests=${3:-.}
targets="test_gradcheck test_gradcheck_heads test_step_ops test_inference test_fused_conv test_graph
  test_staging test_class_statistics test_twin test_collective_nccl"
cmake -S "$source_dir" -B "$build" -DFP_CUDA_EMULATOR=ON -DCMAKE_BUILD_TYPE=Release \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
grep -q 'CUDA backend on the host emulator' "$build.configure.log" ||
  { echo "cuda_emulator: the build did not take the emulator"; exit 1; }
cd "$build"
# the training programs only for the tests that run them (they take a while to build)
if ctest -N -L gpu -R "$tests" | grep -q 'train_nccl_equivalence'; then
  targets="$targets train ingest"
fi
# shellcheck disable=SC2086
cmake --build . -j "$(nproc)" --target $targets
# two emulated devices: the two-rank NCCL test runs a rank on each
export FP_CUDA_EMULATOR_DEVICES=2
# the GPU tests and the dumps their twins read; a skipped one (77) counts as a failure here:
# the emulated device runs every precision
status=0
ctest --output-on-failure -j "$(nproc)" -L gpu -R "$tests" --no-tests=error >ctest.log 2>&1 ||
  status=$?
cat ctest.log
[ "$status" -eq 0 ] || exit "$status"
if grep -q 'Not Run\|\*\*\*Skipped' ctest.log; then
  echo "cuda_emulator: a test was skipped on the emulated device"
  exit 1
fi
count=$(ctest -N -L gpu -R "$tests" | sed -n 's/^Total Tests: //p')
echo "cuda_emulator: $count tests passed on the emulated CUDA backend"
