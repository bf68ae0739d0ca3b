#!/bin/sh
# The libFuzzer harnesses of tests/fuzz (README.md there).
#   run.sh build BUILD_DIR                 configure and build them with clang into BUILD_DIR
#   run.sh run BUILD_DIR TARGET [RUNS]     TARGET over its seed corpus, then fuzzing up to RUNS
#                                          executions (default 20000; at most 10 s) from a fixed
#                                          seed, so a rerun repeats it: what ctest does (label fuzz)
#   run.sh long BUILD_DIR TARGET RUNS      a long run of RUNS executions, at nice 10, its log in
#                                          BUILD_DIR/long/TARGET.log (results/fuzz.md)
# Exits 77 (ctest: skipped) without clang or libFuzzer, or when TARGET was not built.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:?usage: run.sh build|run|long BUILD_DIR [TARGET] [RUNS]}
build=${2:?usage: run.sh build|run|long BUILD_DIR [TARGET] [RUNS]}
cc=${FP_FUZZ_CC:-clang}

# libFuzzer is in clang's compiler-rt, packaged apart from clang itself: try to link a target.
have_libfuzzer() {
  command -v "$cc" >/dev/null 2>&1 || return 1
  probe=$(mktemp -d)
  echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' \
    >"$probe/probe.c"
  status=0
  "$cc" -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" 2>/dev/null ||
    status=1
  rm -rf "$probe"
  return $status
}

# Parsers write their input to files: a RAM-backed TMPDIR keeps that (and fsync) cheap.
pick_tmpdir() {
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then TMPDIR=/dev/shm; else TMPDIR=${TMPDIR:-/tmp}; fi
  export TMPDIR
}

# fuzz TARGET CORPUS_COPY OPTIONS...: the target on a scratch corpus and the seeds
fuzz() {
  target=$1 scratch=$2
  shift 2
  mkdir -p "$scratch" "$build/artifacts"
  "$build/fuzz_$target" -close_fd_mask=3 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/artifacts/$target-" "$@" "$scratch" "$here/corpus/$target"
}

case $mode in
build)
  have_libfuzzer || { echo "no $cc with libFuzzer: fuzz targets skipped"; exit 77; }
  cmake -S "$here" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE= >"$build.log" 2>&1 ||
    { cat "$build.log"; exit 1; }
  cmake --build "$build" -j2
  ;;
run)
  target=${3:?run needs a TARGET}
  [ -x "$build/fuzz_$target" ] || { echo "fuzz_$target not built: skipped"; exit 77; }
  pick_tmpdir
  scratch=$(mktemp -d "$build/scratch.XXXXXX")
  mkdir -p "$build/logs"
  log=$build/logs/$target.log
  status=0
  fuzz "$target" "$scratch" -seed=1 -runs="${4:-20000}" -max_total_time=10 -print_final_stats=1 \
    >"$log" 2>&1 ||
    status=$?
  rm -rf "$scratch"
  # the whole log on failure (the crash report), else the totals
  if [ $status -ne 0 ]; then cat "$log"; else grep -E '^(stat::|Done)' "$log"; fi
  exit $status
  ;;
long)
  target=${3:?long needs a TARGET}
  runs=${4:?long needs RUNS}
  [ -x "$build/fuzz_$target" ] || { echo "fuzz_$target not built"; exit 77; }
  pick_tmpdir
  mkdir -p "$build/long"
  date -u +"started %Y-%m-%dT%H:%M:%SZ" >"$build/long/$target.log"
  nice -n 10 "$0" long-child "$build" "$target" "$runs" >>"$build/long/$target.log" 2>&1
  ;;
long-child)
  # -print_final_stats: total executions, exec/s and the corpus in the log
  fuzz "$3" "$build/long/$3.corpus" -runs="$4" -print_final_stats=1 ${FP_FUZZ_LONG_OPTIONS:-}
  ;;
*)
  echo "run.sh: unknown mode $mode" >&2
  exit 2
  ;;
esac
