#!/usr/bin/env bash
# Compares the C engine's `bench` with the PyTorch twin (tests/twin/bench_torch.py) on the
# same model, input size, batch and thread count, alternating the two --rounds times, and
# prints a markdown report: machine, load, one table row per round, median C/PyTorch ratios.
#
#   results/bench_compare.sh [--arch r34] [--height 288] [--width 192] [--batch 8]
#       [--threads 2] [--rounds 2] [--classes K] [--warmup N] [--steps N]
#       [--infer-batches N] [--torch-args "--channels-last"]
#
# Environment:
#   BUILD_DIR    build directory holding the C `bench` (default: build)
#   BENCH_C      command for the C side, instead of $BUILD_DIR/bench (e.g. a fake one for
#                testing this script; an exported shell function works too)
#   PYTHON       Python with torch (default: /usr/bin/python3)
#   BENCH_TORCH  command for the PyTorch side (default: $PYTHON tests/twin/bench_torch.py)
# Both commands get the same flags and must print a line with train_img_s=<x> infer_img_s=<y>.
# Rounds alternate the order (C first in odd rounds, PyTorch first in even ones).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=r34 height=288 width=192 batch=8 threads=2 rounds=2
extra=() torch_extra=""

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
need() { [[ $# -ge 2 && -n $2 ]] || { echo "bench_compare: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --arch) need "$@"; arch=$2; shift 2 ;;
    --height) need "$@"; height=$2; shift 2 ;;
    --width) need "$@"; width=$2; shift 2 ;;
    --batch) need "$@"; batch=$2; shift 2 ;;
    --threads) need "$@"; threads=$2; shift 2 ;;
    --rounds) need "$@"; rounds=$2; shift 2 ;;
    --classes|--warmup|--steps|--infer-batches) need "$@"; extra+=("$1" "$2"); shift 2 ;;
    --torch-args) need "$@"; torch_extra=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_compare: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench_compare: --rounds must be >= 1" >&2; exit 2; }

PYTHON=${PYTHON:-/usr/bin/python3}
c_default=${BUILD_DIR:-build}/bench
BENCH_C=${BENCH_C:-$c_default}
BENCH_TORCH=${BENCH_TORCH:-$PYTHON $repo/tests/twin/bench_torch.py}
cd "$repo"
if [[ $BENCH_C == "$c_default" && ! -x $c_default ]]; then
  echo "bench_compare: C bench $c_default not found; build it, or set BUILD_DIR or BENCH_C" >&2
  exit 1
fi

flags=(--arch "$arch" --height "$height" --width "$width" --batch "$batch" --threads "$threads"
       "${extra[@]}")
quoted_flags=$(printf '%q ' "${flags[@]}")

# run_side NAME COMMAND EXTRA_FLAGS: runs one bench; sets side_train and side_infer and
# appends its result line to raw_lines. Exits the script when the bench fails.
raw_lines=()
run_side() {
  local name=$1 cmd=$2 more=$3 out line
  if ! out=$(eval "$cmd $quoted_flags $more" 2>"$tmp/$name.err"); then
    echo "bench_compare: $name bench failed ($cmd):" >&2
    tail -n 20 "$tmp/$name.err" >&2
    exit 1
  fi
  line=$(grep -E 'train_img_s=' <<<"$out" | grep -E 'infer_img_s=' | tail -n 1 || true)
  side_train=$(sed -nE 's/.*train_img_s=([0-9.eE+-]+).*/\1/p' <<<"$line")
  side_infer=$(sed -nE 's/.*infer_img_s=([0-9.eE+-]+).*/\1/p' <<<"$line")
  if [[ -z $side_train || -z $side_infer ]]; then
    echo "bench_compare: no 'train_img_s=<x> infer_img_s=<y>' line from $name; it printed:" >&2
    printf '%s\n' "$out" >&2
    tail -n 20 "$tmp/$name.err" >&2
    exit 1
  fi
  raw_lines+=("$line")
}
run_c() { run_side c "$BENCH_C" ""; c_train=$side_train c_infer=$side_infer; }
run_torch() { run_side pytorch "$BENCH_TORCH" "$torch_extra"; t_train=$side_train t_infer=$side_infer; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load() { awk '{print $1" "$2" "$3}' /proc/loadavg 2>/dev/null || uptime; }
model=$(lscpu 2>/dev/null | sed -nE 's/^Model name:[[:space:]]+//p' | head -n 1)
echo "## U-Net bench: C engine vs PyTorch"
echo
echo "- config: arch=$arch ${height}x${width} batch=$batch threads=$threads ${extra[*]:-}" \
  "${torch_extra:+(PyTorch extra: $torch_extra)}"
echo "- machine: ${model:-unknown CPU}, nproc $(nproc), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- load before: $(uptime | sed 's/^ *//')"
echo "- C: \`$BENCH_C\`; PyTorch: \`$BENCH_TORCH $torch_extra\`"
echo
echo "| round | C train img/s | PyTorch train img/s | train C/PT | C infer img/s | PyTorch infer img/s | infer C/PT | load (1m 5m 15m) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---|"

train_ratios=() infer_ratios=()
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2 == 1)); then run_c; run_torch; else run_torch; run_c; fi
  tr=$(awk -v a="$c_train" -v b="$t_train" 'BEGIN{printf "%.3f", a/b}')
  ir=$(awk -v a="$c_infer" -v b="$t_infer" 'BEGIN{printf "%.3f", a/b}')
  train_ratios+=("$tr") infer_ratios+=("$ir")
  echo "| $r | $c_train | $t_train | $tr | $c_infer | $t_infer | $ir | $(load) |"
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{if (NR%2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2}'; }
echo
echo "**median C/PyTorch over $rounds round(s): train $(median "${train_ratios[@]}")x," \
  "infer $(median "${infer_ratios[@]}")x** (above 1: C is faster)"
echo
echo "- load after: $(uptime | sed 's/^ *//')"
echo
echo '```'
printf '%s\n' "${raw_lines[@]}"
echo '```'
