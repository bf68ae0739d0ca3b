#!/bin/sh
# The sanitizer part of the suite (ctest: sanitizers, label sanitize): builds the project again
# with AddressSanitizer + UndefinedBehaviorSanitizer (FP_SANITIZE, -O2 -g) into BUILD_DIR, as a
# machine without the CUDA toolkit builds it (FP_CUDA_ROOT names no toolkit: no CUDA backend, no
# NCCL; the commands are built too, so the build without the toolkit is checked in every run),
# and runs there a representative part of the suite: every op's gradient check, the step ops,
# the inference model and its fused ops, the Extended U-Net twin (forward, losses, backward of
# the whole model), the readers of outside data and the training loader, threads failing at once
# and the HDF5 lock. Any ASan report, leak or UBSan report fails the test.
#   tests/sanitize/run.sh SOURCE_DIR BUILD_DIR
set -eu
source_dir=${1:?usage: run.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: run.sh SOURCE_DIR BUILD_DIR}
tests='^(gradcheck|gradcheck_heads|step_ops|inference_model|fused_conv|twin_r18_extended|branch_targets|fatal_threads|hdf5_lock|io_readers|io_text_formats|io_resize|io_loader|io_augment)$'
targets="test_gradcheck test_gradcheck_heads test_step_ops test_inference test_fused_conv
  test_twin test_branch_targets test_fatal_threads test_hdf5_lock test_readers test_text_formats
  test_resize test_loader test_augment train parse_catalog ingest evaluate bench"
cmake -S "$source_dir" -B "$build" -DFP_SANITIZE=ON -DFP_CUDA_ROOT="$build/no-cuda-toolkit" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
grep -q 'CPU build only' "$build.configure.log" ||
  { echo "sanitizers: the build found a CUDA toolkit where none was named"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $targets
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cd "$build"
ctest --output-on-failure -R "$tests"
count=$(ctest -N -R "$tests" | sed -n 's/^Total Tests: //p')
echo "sanitizers: $count tests passed under ASan + UBSan"
