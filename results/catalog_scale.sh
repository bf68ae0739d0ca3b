#!/usr/bin/env bash
# Catalog scale (issue "Hardening"): peak resident memory (VmHWM) of rank 0 and of a worker
# of `parse_catalog` against the number N of entries of a JPEG list, fitted linearly in N and
# extrapolated to 10 M; and a worker's peak per chunk (chunk size, batch), which does not
# depend on N. Prints markdown tables; results/catalog_scale.md has the numbers of one run.
#
#   nice -n 5 results/catalog_scale.sh [BUILD_DIR]      (default: build)
#
# Environment (defaults in brackets):
#   SCALE_DIR   scratch directory, never inside the repository [/work/scale]
#   SIZES       list lengths measured and fitted [100000 300000 1000000]
#   VALIDATE    list lengths measured but not fitted, to check the extrapolation ["" = none;
#               e.g. 10000000]. Entries beyond the largest of SIZES name files that do not
#               exist (only the first chunks are ever opened), so no more symlinks are made.
#   PRIOR       1: also measure each size with a category prior CSV listing every id [0]
#   RANKS [2]  CHUNK [64]  BATCH [8]
#   STOP_AFTER  chunks done (and at least one by every rank) before the run is stopped [4]
#   PER_CHUNK   "chunk:batch" pairs of complete small runs for the per-chunk table
#               [64:8 512:8 2048:8 64:64]
#   CKPT        a checkpoint to use; default: SCALE_DIR/ckpt/run/last.h5, trained if missing
#               (ingest 24 CCP photos at 64x64, ResNet18 U-Net, 1 epoch, as tests/catalog does)
#   KEEP        1: keep the symlinks, lists and output directories [0: removed at the end]
#
# Method. The list: one absolute path per line, SCALE_DIR/links/iNNNNNNN.jpg (id iNNNNNNN),
# symlinks to 8 CCP photos in turn. A run on N entries cannot finish here (the model parses
# tens to hundreds of images a second), and parse_catalog has no option to stop after some
# chunks (catalog.limit shortens the catalog itself), so the run is started under mpirun with
# OMP_NUM_THREADS=1, and once rank 0 has listed, broadcast and planned the catalog and the
# manifest lists STOP_AFTER finished chunks and at least one of every rank (a worker may
# still be unpacking a long listing when rank 0 has done several), each rank's VmHWM is read
# from /proc/PID/status and mpirun is sent SIGTERM (the ranks still alive after 30 s get SIGKILL). The peak is
# therefore that of listing, broadcasting, planning and the first chunks on both ranks; it
# does not include the end of a run (merging parts into shards, the master file), which
# holds per-chunk arrays only (2 x 8 bytes per chunk on each rank). The per-chunk runs are
# complete runs (N = 2 chunks per rank), measured by GNU time -v for each rank.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${1:-$repo/build}")
scale=${SCALE_DIR:-/work/scale}
sizes=(${SIZES:-100000 300000 1000000})
validate=(${VALIDATE:-})
ranks=${RANKS:-2}
chunk=${CHUNK:-64}
batch=${BATCH:-8}
stop_after=${STOP_AFTER:-4}
per_chunk=(${PER_CHUNK:-64:8 512:8 2048:8 64:64})
ccp=$(realpath "${CCP_DIR:-$repo/../shared/data/ccp}")
case $(realpath -m "$scale")/ in "$repo"/*) echo "SCALE_DIR must be outside the repository" >&2; exit 2;; esac
mkdir -p "$scale"
scale=$(realpath "$scale")
export OMP_NUM_THREADS=1
root=()
[[ $(id -u) == 0 ]] && root=(--allow-run-as-root)
mpi=(mpirun "${root[@]}" --oversubscribe -np "$ranks")

# ---- the tiny checkpoint ----
ckpt=${CKPT:-$scale/ckpt/run/last.h5}
if [[ ! -f $ckpt ]]; then
  echo "training the tiny checkpoint $ckpt ..." >&2
  mkdir -p "$scale/ckpt"
  "$build/ingest" ccp --root "$ccp" --limit 24 --height 64 --width 64 \
    --out "$scale/ckpt/ccp64.h5" >"$scale/ckpt/ingest.log" 2>&1
  cat >"$scale/ckpt/train.ini" <<EOF
[data]
dataset = $scale/ckpt/ccp64.h5
[model]
arch = r18
height = 64
width = 64
[train]
batch = 4
epochs = 1
threads = 1
[checkpoint]
dir = $scale/ckpt/run
resume = no
EOF
  "$build/train" "$scale/ckpt/train.ini" >"$scale/ckpt/train.log" 2>&1
fi
ckpt=$(realpath "$ckpt")

# ---- symlinks and lists ----
largest=0
for n in "${sizes[@]}"; do (( n > largest )) && largest=$n; done
all_sizes=("${sizes[@]}" "${validate[@]}")
python3 - "$scale" "$ccp/photos" "$largest" "${all_sizes[@]}" <<'EOF'
import os, sys
scale, photos, largest, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), map(int, sys.argv[4:])
links = os.path.join(scale, "links")
os.makedirs(links, exist_ok=True)
sources = sorted(n for n in os.listdir(photos) if n.endswith(".jpg"))[:8]
sources = [os.path.join(photos, n) for n in sources]
made = 0
for i in range(largest):
    link = os.path.join(links, f"i{i:07d}.jpg")
    if not os.path.lexists(link):
        os.symlink(sources[i % len(sources)], link)
        made += 1
for n in sizes:
    path = os.path.join(scale, f"list-{n}.txt")
    if os.path.exists(path) and os.path.getsize(path) == n * (len(links) + 14):
        continue
    with open(path + ".tmp", "w") as f:
        for start in range(0, n, 100000):
            f.write("".join(f"{links}/i{i:07d}.jpg\n" for i in range(start, min(n, start + 100000))))
    os.replace(path + ".tmp", path)
print(f"links: {made} made, {largest} in {links}", file=sys.stderr)
EOF

# ---- the prior (PRIOR=1): one rule, every id of the largest list in the CSV ----
if [[ ${PRIOR:-0} == 1 ]]; then
  cp "$repo/jobs/category_prior/ccp59.prior" "$scale/ccp59.prior"
  type=$(grep -v '^#' "$scale/ccp59.prior" | grep ':' | head -1 | cut -d: -f1 | sed 's/ *$//')
  for n in "${all_sizes[@]}"; do
    [[ -f $scale/types-$n.csv ]] && continue
    awk -v n="$n" -v t="$type" 'BEGIN { print "id,product_type";
      for (i = 0; i < n; i++) printf "i%07d,%s\n", i, t }' >"$scale/types-$n.csv"
  done
fi

write_job() { # FILE SOURCE OUT CHUNK BATCH [PRIOR_CSV]
  cat >"$1" <<EOF
[catalog]
source = $2
[model]
checkpoint = $ckpt
batch = $5
threads = 1
precision = fp32
[output]
dir = $3
[schedule]
chunk = $4
progress_seconds = 0
EOF
  if [[ -n ${6:-} ]]; then
    printf '[prior]\ntable = %s\ncsv = %s\n' "$scale/ccp59.prior" "$6" >>"$1"
  fi
}

# One stopped run: prints "rank0_kB worker_kB planned_s stopped_s chunks_done".
measure_stopped() { # JOB OUT LOG
  python3 - "$stop_after" "$2/manifest" "$3" "${mpi[@]}" "$build/parse_catalog" "$1" <<'EOF'
import os, signal, subprocess, sys, time
stop_after, manifest, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
command = sys.argv[4:]
start = time.time()
with open(log, "w") as out:
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)

def rank_pids():
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[3]) != process.pid:  # session
                continue
            if "parse_catalog" not in stat.split(")")[0]:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for variable in environment:
            if variable.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(variable.split(b"=")[1])] = int(entry)
    return ranks

def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None

def done():
    """Chunks in the manifest, and the ranks that did them."""
    try:
        with open(manifest) as f:
            lines = [line.split() for line in f if line.startswith("done ")]
    except FileNotFoundError:
        return 0, set()
    return len(lines), {line[2] for line in lines}

rank_count = int(command[command.index("-np") + 1])

planned = None
pids, peaks = {}, {}
while True:
    if process.poll() is not None:
        sys.exit(f"parse_catalog ended (exit {process.returncode}) before {stop_after} chunks; "
                 f"see {log}")
    if len(pids) < rank_count:
        pids = rank_pids()
    for rank, pid in pids.items():
        value = hwm(pid)
        if value:
            peaks[rank] = max(peaks.get(rank, 0), value)
    if planned is None:
        with open(log) as f:
            if "chunks to do" in f.read():
                planned = time.time() - start
                at_plan = dict(peaks)
    chunks, by = done()
    if chunks >= stop_after and len(by) == rank_count:  # every rank has done a chunk
        break
    time.sleep(0.05)
for rank, pid in pids.items():  # the high-water marks at the stop
    value = hwm(pid)
    if value:
        peaks[rank] = max(peaks.get(rank, 0), value)
stopped = time.time() - start
chunks = done()[0]
os.kill(process.pid, signal.SIGTERM)
deadline = time.time() + 30
while time.time() < deadline and (process.poll() is None or any(hwm(p) for p in pids.values())):
    time.sleep(0.1)
for pid in pids.values():
    if hwm(pid):
        os.kill(pid, signal.SIGKILL)
process.wait()
workers = [peaks[r] for r in peaks if r != 0]
planned_workers = [at_plan.get(r, 0) for r in peaks if r != 0]
print(peaks[0], max(workers) if workers else 0, f"{planned:.1f}", f"{stopped:.1f}", chunks,
      at_plan.get(0, 0), max(planned_workers) if planned_workers else 0)
EOF
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo "## Peak RSS (VmHWM) against the list length N"
echo
echo "mpirun -np $ranks, OMP_NUM_THREADS=1, model.threads=1, chunk $chunk, batch $batch," \
  "checkpoint $ckpt; stopped after $stop_after chunks (SIGTERM). \"at plan\": the" \
  "VmHWM sampled (every 50 ms) when rank 0 printed its plan, before any chunk; \"peak\": at the stop."
echo
echo "| N | prior CSV | list bytes | rank 0 at plan (MB) | worker at plan (MB) | rank 0 peak (MB) | worker peak (MB) | planned at (s) | stopped at (s) | chunks done |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
variants=(none)
[[ ${PRIOR:-0} == 1 ]] && variants+=(prior)
results=$scale/results.txt
: >"$results"
for variant in "${variants[@]}"; do
  for n in "${all_sizes[@]}"; do
    out=$scale/out-$n
    rm -rf "$out"
    job=$scale/job-$n.ini
    csv=""
    [[ $variant == prior ]] && csv=$scale/types-$n.csv
    write_job "$job" "$scale/list-$n.txt" "$out" "$chunk" "$batch" "$csv"
    line=$(measure_stopped "$job" "$out" "$scale/log-$n-$variant.txt")
    read -r r0 w planned stopped chunks r0_plan w_plan <<<"$line"
    fitted=yes
    for v in "${validate[@]}"; do [[ $v == "$n" ]] && fitted=no; done
    echo "$variant $n $r0 $w $fitted" >>"$results"
    echo "| $n | $([[ $variant == prior ]] && echo yes || echo no) | $(stat -c %s "$scale/list-$n.txt") | $(mb "$r0_plan") | $(mb "$w_plan") | $(mb "$r0") | $(mb "$w") | $planned | $stopped | $chunks |"
    rm -rf "$out"
  done
done
echo
echo "Command of each row: \`${mpi[*]} $build/parse_catalog $scale/job-N.ini\` (job file below)."
echo

echo "## Linear fit of the peak in N (least squares over the fitted sizes)"
echo
echo "| prior CSV | rank | bytes per entry | intercept (MB) | predicted at 10 M (MB) | measured at 10 M (MB) |"
echo "|---|---|---:|---:|---:|---:|"
python3 - "$results" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
for variant in sorted({r[0] for r in rows}, key=lambda v: v != "none"):
    for column, name in ((2, "0"), (3, "worker")):
        points = [(int(r[1]), int(r[column]) * 1024) for r in rows if r[0] == variant and r[4] == "yes"]
        if len(points) < 2:
            continue
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        slope = (sum((x - mean_x) * (y - mean_y) for x, y in points)
                 / sum((x - mean_x) ** 2 for x, _ in points))
        intercept = mean_y - slope * mean_x
        predicted = intercept + slope * 10_000_000
        measured = [int(r[column]) * 1024 for r in rows if r[0] == variant and int(r[1]) == 10_000_000]
        print(f"| {'yes' if variant == 'prior' else 'no'} | {name} | {slope:.0f} | "
              f"{intercept / 2**20:.0f} | {predicted / 2**20:.0f} | "
              f"{measured[0] / 2**20:.0f} |" if measured else
              f"| {'yes' if variant == 'prior' else 'no'} | {name} | {slope:.0f} | "
              f"{intercept / 2**20:.0f} | {predicted / 2**20:.0f} | not run |")
EOF
echo

echo "## A worker's peak per chunk (complete runs, N = 2 chunks per rank, GNU time -v)"
echo
echo "| chunk | batch | N | rank 0 peak (MB) | worker peak (MB) | wall (s) |"
echo "|---:|---:|---:|---:|---:|---:|"
for pair in "${per_chunk[@]}"; do
  c=${pair%:*} b=${pair#*:}
  n=$(( c * 2 * ranks ))
  list=$scale/small-$n.txt
  head -n "$n" "$scale/list-${sizes[0]}.txt" >"$list"
  out=$scale/out-chunk-$c-$b
  rm -rf "$out"
  job=$scale/job-chunk-$c-$b.ini
  write_job "$job" "$list" "$out" "$c" "$b"
  rm -f "$scale"/time-*.txt
  start=$(date +%s.%N)
  "${mpi[@]}" bash -c 'exec /usr/bin/time -v -o "$0/time-$OMPI_COMM_WORLD_RANK.txt" "$@"' \
    "$scale" "$build/parse_catalog" "$job" >"$scale/log-chunk-$c-$b.txt" 2>&1 \
    || { tail -20 "$scale/log-chunk-$c-$b.txt" >&2; exit 1; }
  wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  peak() { awk '/Maximum resident set size/ { print $NF }' "$scale/time-$1.txt"; }
  worker=0
  for (( r = 1; r < ranks; r++ )); do (( $(peak $r) > worker )) && worker=$(peak $r); done
  echo "| $c | $b | $n | $(mb "$(peak 0)") | $(mb "$worker") | $wall |"
  rm -rf "$out"
done
echo
echo "Command of each row: \`${mpi[*]} bash -c 'exec /usr/bin/time -v -o $scale/time-\$OMPI_COMM_WORLD_RANK.txt \"\$@\"' $scale $build/parse_catalog JOB\`"
echo
echo "Job file (N = ${sizes[-1]}; the per-chunk runs differ in source, chunk and batch):"
echo
echo '```ini'
cat "$scale/job-${sizes[-1]}.ini"
echo '```'

if [[ ${KEEP:-0} != 1 ]]; then
  rm -rf "$scale/links" "$scale"/list-*.txt "$scale"/small-*.txt "$scale"/types-*.csv "$scale"/out-*
fi
