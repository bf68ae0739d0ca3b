#!/usr/bin/env bash
# Compares the C engine's `bench` with the PyTorch twin (tests/twin/bench_torch.py) on the
# same model, input size, batch and thread count. Every round runs every configuration (C
# precisions and PyTorch settings), the order rotated by one each round, and the script
# prints a markdown report: machine, ISA flags, load, one table row per round and
# configuration, median img/s per configuration, and median C/PyTorch ratios per precision.
#
#   results/bench_compare.sh [--arch r34] [--height 288] [--width 192] [--batch 8]
#       [--threads 2] [--rounds 2] [--classes K] [--warmup N] [--steps N]
#       [--infer-batches N] [--c-precisions "fp32 bf16"]
#       [--torch-configs "--channels-last;--channels-last --bf16"] [--torch-args "ARGS"]
#
#   --c-precisions "P ..."   one C configuration per precision, run with --precision P
#                            (default: one, run without --precision)
#   --torch-configs "A;B"    one PyTorch configuration per ';'-separated flag set
#                            (default: one, with no extra flags)
#   --torch-args "A"         the same as --torch-configs "A"
#
# C/PyTorch ratios pair configurations of the same precision: the precision=<p> a bench
# prints, else the requested one (C: --precision; PyTorch: bf16 if its flags have --bf16),
# else fp32. C fp32 and bf16 against PyTorch fp32 and bf16, both channels-last:
#   results/bench_compare.sh --rounds 3 --c-precisions "fp32 bf16" \
#       --torch-configs "--channels-last;--channels-last --bf16"
#
# Environment:
#   BUILD_DIR    build directory holding the C `bench` (default: build)
#   BENCH_C      command for the C side, instead of $BUILD_DIR/bench (e.g. a fake one for
#                testing this script; an exported shell function works too)
#   PYTHON       Python with torch (default: /usr/bin/python3)
#   BENCH_TORCH  command for the PyTorch side (default: $PYTHON tests/twin/bench_torch.py)
# Both commands get the same flags and must print a line with train_img_s=<x> infer_img_s=<y>.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=r34 height=288 width=192 batch=8 threads=2 rounds=2
extra=() c_precisions=("") torch_configs=("")

usage() { sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
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
    --c-precisions) need "$@"; read -ra c_precisions <<<"$2"; shift 2 ;;
    # the ';' appended keeps a last empty set: "A;" is A and then no extra flags
    --torch-configs) need "$@"; IFS=';' read -ra torch_configs <<<"$2;"; shift 2 ;;
    --torch-args) need "$@"; torch_configs=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_compare: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench_compare: --rounds must be >= 1" >&2; exit 2; }
((${#c_precisions[@]} && ${#torch_configs[@]})) ||
  { echo "bench_compare: --c-precisions and --torch-configs need a configuration" >&2; exit 2; }

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

# Configurations: name, side (c|pytorch), command, extra flags, precision.
names=() sides=() cmds=() mores=() precs=()
for p in "${c_precisions[@]}"; do
  names+=("C${p:+ $p}") sides+=(c) cmds+=("$BENCH_C") mores+=("${p:+--precision $p}")
  precs+=("${p:-fp32}")
done
for t in "${torch_configs[@]}"; do
  t=$(sed -E 's/^ +| +$//g' <<<"$t")
  p=fp32; [[ " $t " == *" --bf16 "* ]] && p=bf16
  names+=("PyTorch${t:+ $t}") sides+=(pytorch) cmds+=("$BENCH_TORCH") mores+=("$t") precs+=("$p")
done
n=${#names[@]}

# run_config I: runs configuration I once; sets run_train and run_infer, updates its
# precision from a printed precision=<p>, and appends the result line to raw_lines. Exits the
# script when the bench fails.
raw_lines=()
run_config() {
  local i=$1 out line p
  if ! out=$(eval "${cmds[i]} $quoted_flags ${mores[i]}" 2>"$tmp/$i.err"); then
    echo "bench_compare: ${names[i]} bench failed (${cmds[i]} ${mores[i]}):" >&2
    tail -n 20 "$tmp/$i.err" >&2
    exit 1
  fi
  line=$(grep -E 'train_img_s=' <<<"$out" | grep -E 'infer_img_s=' | tail -n 1 || true)
  run_train=$(sed -nE 's/.*train_img_s=([0-9.eE+-]+).*/\1/p' <<<"$line")
  run_infer=$(sed -nE 's/.*infer_img_s=([0-9.eE+-]+).*/\1/p' <<<"$line")
  if [[ -z $run_train || -z $run_infer ]]; then
    echo "bench_compare: no 'train_img_s=<x> infer_img_s=<y>' line from ${names[i]};" \
      "it printed:" >&2
    printf '%s\n' "$out" >&2
    tail -n 20 "$tmp/$i.err" >&2
    exit 1
  fi
  p=$(sed -nE 's/.*precision=([A-Za-z0-9_]+).*/\1/p' <<<"$line")
  precs[i]=${p:-${precs[i]}}
  raw_lines+=("$line")
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load() { awk '{print $1" "$2" "$3}' /proc/loadavg 2>/dev/null || uptime; }
median() { sort -g | awk '{v[NR]=$1} END{if (NR%2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
model=$(lscpu 2>/dev/null | sed -nE 's/^Model name:[[:space:]]+//p' | head -n 1)
[[ -n $model ]] ||
  model=$(sed -nE 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
isa=()
for flag in avx2 avx512f avx512_bf16 amx_bf16 amx_tile; do
  if grep -qwm1 "$flag" /proc/cpuinfo 2>/dev/null; then isa+=("$flag"); else isa+=("no-$flag"); fi
done
echo "## U-Net bench: C engine vs PyTorch"
echo
echo "- config: arch=$arch ${height}x${width} batch=$batch threads=$threads ${extra[*]:-}"
echo "- machine: ${model:-unknown CPU}, nproc $(nproc), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- ISA flags: ${isa[*]}"
echo "- load before: $(uptime | sed 's/^ *//')"
echo "- C: \`$BENCH_C\`; PyTorch: \`$BENCH_TORCH\`"
echo "- configurations, run in rotating order: $(printf "\`%s\`, " "${names[@]}" | sed 's/, $//')"
echo
echo "| round | configuration | precision | train img/s | infer img/s | load (1m 5m 15m) |"
echo "|---:|---|---|---:|---:|---|"

train=() infer=()  # index (round-1)*n + configuration
for ((r = 1; r <= rounds; r++)); do
  for ((k = 0; k < n; k++)); do
    i=$(((k + r - 1) % n))
    run_config "$i"
    train[(r - 1) * n + i]=$run_train infer[(r - 1) * n + i]=$run_infer
    echo "| $r | ${names[i]} | ${precs[i]} | $run_train | $run_infer | $(load) |"
  done
done

# per_round I ARRAY: prints the per-round values of configuration I from array $2
per_round() {
  local -n values=$2
  local r
  for ((r = 0; r < rounds; r++)); do echo "${values[r * n + $1]}"; done
}
echo
echo "| configuration | precision | median train img/s | median infer img/s |"
echo "|---|---|---:|---:|"
for ((i = 0; i < n; i++)); do
  echo "| ${names[i]} | ${precs[i]} | $(per_round "$i" train | median)" \
    "| $(per_round "$i" infer | median) |"
done
echo
echo "Median over $rounds round(s) of the per-round C/PyTorch ratio (above 1: C is faster):"
echo
paired=0
for ((c = 0; c < n; c++)); do
  [[ ${sides[c]} == c ]] || continue
  for ((t = 0; t < n; t++)); do
    [[ ${sides[t]} == pytorch && ${precs[t]} == "${precs[c]}" ]] || continue
    tr=() ir=()
    for ((r = 0; r < rounds; r++)); do
      tr+=("$(ratio "${train[r * n + c]}" "${train[r * n + t]}")")
      ir+=("$(ratio "${infer[r * n + c]}" "${infer[r * n + t]}")")
    done
    echo "- **${names[c]} / ${names[t]} (${precs[c]}): train $(printf '%s\n' "${tr[@]}" | median)x," \
      "infer $(printf '%s\n' "${ir[@]}" | median)x**"
    paired=1
  done
done
((paired)) || echo "- (no C and PyTorch configurations of the same precision)"
echo
echo "- load after: $(uptime | sed 's/^ *//')"
echo
echo '```'
printf '%s\n' "${raw_lines[@]}"
echo '```'
