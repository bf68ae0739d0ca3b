#!/bin/bash
# The nightly catalog parse under Slurm: parse_catalog over the catalog, one rank per task on
# every allocated node, writing tonight's run next to the previous nights' and copying the
# results of unchanged photos from the last complete one.
#
#   cd REPO && sbatch [sbatch options] slurm/parse_catalog.sh JOBFILE PARSES_DIR RUN_NAME \
#       [section.key=value ...]
#   e.g. from cron: sbatch slurm/parse_catalog.sh jobs/catalog/nightly.ini /data/catalog/parses $(date +%F)
#
# - Tonight's output is PARSES_DIR/RUN_NAME (output.dir). RUN_NAME is given at submission, not
#   taken from the clock, so a run requeued after midnight still writes the same night.
# - nightly.previous is the last complete run before it: the greatest name below RUN_NAME
#   among PARSES_DIR/*/master.h5 (so dated names, e.g. YYYY-MM-DD, must sort in time). None on
#   the first night: everything is computed.
# - When the run is complete, PARSES_DIR/latest points to it (a symlink, replaced atomically).
#
# Requeue-safe: parse_catalog records every finished chunk in PARSES_DIR/RUN_NAME/manifest and
# resumes from it, so any restart loses at most the chunks in flight. On preemption or a node
# failure Slurm requeues the job (--requeue); 60 s before the time limit (--signal=B:USR1@60)
# the script requeues it itself, which stops the current run (TERM: each rank removes the file
# it was writing) and puts the same job id back in the queue; the next run continues where
# this one stopped, with any number of nodes. Running the script again after the job is
# complete does nothing ("complete already") and exits 0.
#
# The #SBATCH lines are defaults; sbatch options override them:
#   --nodes=1 --ntasks-per-node=8  ranks; rank 0 also hands out the chunks (a thread, no core)
#   --cpus-per-task=4              cores per rank: passed on as model.threads
#   --time=08:00:00                wall-clock limit of one run; the job requeues until done
#   --output=slurm-%x-%j.out       appended to by every run of the job
# Environment: FP_PARSE_CATALOG, the parse_catalog binary (default:
# $SLURM_SUBMIT_DIR/build/parse_catalog, so submit from the repository root).
# Exit status: parse_catalog's (0 done, 1 error, 2 usage), or 0 after requeueing.
#
#SBATCH --job-name=fp-parse-catalog
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=4
#SBATCH --time=08:00:00
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -u

if [ $# -lt 3 ]; then
  echo "usage: sbatch slurm/parse_catalog.sh JOBFILE PARSES_DIR RUN_NAME [section.key=value ...]" >&2
  exit 2
fi
if [ -z "${SLURM_JOB_ID:-}" ]; then
  echo "parse_catalog.sh: not inside a Slurm job; submit it with sbatch" >&2
  exit 2
fi
job="$1" parses="${2%/}" run_name="$3"
shift 3
case "$run_name" in
  '' | */* | latest) echo "parse_catalog.sh: bad RUN_NAME '$run_name'" >&2; exit 2 ;;
esac
parse_catalog="${FP_PARSE_CATALOG:-${SLURM_SUBMIT_DIR:-.}/build/parse_catalog}"
if [ ! -x "$parse_catalog" ]; then
  echo "parse_catalog.sh: $parse_catalog is not an executable (build first, or set FP_PARSE_CATALOG)" >&2
  exit 2
fi
mkdir -p "$parses" || exit 1

previous=""
for master in "$parses"/*/master.h5; do
  [ -e "$master" ] || continue
  name="$(basename "$(dirname "$master")")"
  if [[ "$name" < "$run_name" && ( -z "$previous" || "$name" > "$(basename "$previous")" ) ]]; then
    previous="$parses/$name"
  fi
done

# srun starts the ranks directly where Slurm has its PMIx plugin; otherwise Open MPI's mpirun,
# which reads the allocation itself.
# --kill-on-bad-exit: a rank that exits non-zero ends the step at once (mpirun does so by default).
if srun --mpi=list 2>&1 | grep -qw pmix; then
  launcher=(srun --mpi=pmix --kill-on-bad-exit=1)
  if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then launcher+=(--cpus-per-task="$SLURM_CPUS_PER_TASK"); fi
else
  launcher=(mpirun -np "$SLURM_NTASKS")
  if [ "$(id -u)" = 0 ]; then launcher+=(--allow-run-as-root); fi
fi
threads=()
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then threads=(model.threads="$SLURM_CPUS_PER_TASK"); fi

command=("${launcher[@]}" "$parse_catalog" "$job" output.dir="$parses/$run_name"
         nightly.previous="$previous" "${threads[@]}" "$@")
echo "parse_catalog.sh: job $SLURM_JOB_ID run $((${SLURM_RESTART_COUNT:-0} + 1)), $SLURM_NTASKS" \
  "ranks, previous run '${previous:-none}': ${command[*]}"

requeue() {
  echo "parse_catalog.sh: got $1: requeueing job $SLURM_JOB_ID (the next run resumes from the manifest)"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    echo "parse_catalog.sh: scontrol requeue $SLURM_JOB_ID failed; resubmit the same command to" \
      "continue" >&2
  fi
  exit 0
}
trap 'requeue USR1' USR1

"${command[@]}" &
launcher_pid=$!
# A trapped signal interrupts wait; the trap exits the script itself.
wait "$launcher_pid"
status=$?
if [ "$status" -eq 0 ]; then
  ln -sfn "$run_name" "$parses/.latest.tmp" && mv -T "$parses/.latest.tmp" "$parses/latest"
fi
echo "parse_catalog.sh: parse_catalog exited with status $status"
exit "$status"
