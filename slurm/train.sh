#!/bin/bash
# Data-parallel training under Slurm: one `train` rank per GPU on every allocated node, resumed
# automatically after preemption or the time limit.
#
#   cd REPO && sbatch [--nodes=N ...] slurm/train.sh JOBFILE [section.key=value ...]
#
# The #SBATCH lines below are defaults; options given to sbatch override them:
#   --nodes=1                nodes; the global batch is nodes x ntasks-per-node x train.batch
#   --ntasks-per-node=8      = GPUs per node: one rank per GPU
#   --gpus-per-task=1        each rank sees only its own GPU (device 0 inside the rank)
#   --cpus-per-task=8        CPU cores per rank (data loading); passed on as train.threads
#   --time=24:00:00          wall-clock limit of one run; the job requeues itself until done
#   --signal=B:USR1@120      USR1 to this script 120 s before the limit, time enough for train
#                            to finish its step and write checkpoint.dir/last.h5
#   --requeue                the job may go back to the queue (preemption, or itself, below)
#   --open-mode=append       a requeued run appends to the same output file
#   --output=slurm-%x-%j.out the output file (job name, job id), in the submission directory
# Environment: FP_TRAIN, the train binary (default: $SLURM_SUBMIT_DIR/build/train, so submit
# from the repository root).
#
# Contract with train: on SIGTERM or SIGUSR1 it finishes the current step, writes its checkpoint
# and exits 75 (EX_TEMPFAIL); it exits 0 when training is complete; with checkpoint.resume=auto
# (the default) it continues exactly from checkpoint.dir/last.h5. So on USR1 or TERM this
# script passes USR1 on to the ranks, and when train exits 75 it requeues the job and exits 0;
# otherwise it exits with train's status.
#
#SBATCH --job-name=fp-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -u

if [ $# -lt 1 ]; then
  echo "usage: sbatch slurm/train.sh JOBFILE [section.key=value ...]" >&2
  exit 2
fi
if [ -z "${SLURM_JOB_ID:-}" ]; then
  echo "train.sh: not inside a Slurm job; submit it with sbatch" >&2
  exit 2
fi
train="${FP_TRAIN:-${SLURM_SUBMIT_DIR:-.}/build/train}"
if [ ! -x "$train" ]; then
  echo "train.sh: $train is not an executable (build first, or set FP_TRAIN)" >&2
  exit 2
fi

# srun starts the ranks directly where Slurm has its PMIx plugin; otherwise Open MPI's mpirun,
# which launches its daemons through Slurm and reads the allocation itself. Since Slurm 22.05
# srun no longer inherits --cpus-per-task from the batch job, so it is passed explicitly.
if srun --mpi=list 2>&1 | grep -qw pmix; then
  launcher=(srun --mpi=pmix --kill-on-bad-exit=1)
  if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then launcher+=(--cpus-per-task="$SLURM_CPUS_PER_TASK"); fi
else
  launcher=(mpirun -np "$SLURM_NTASKS")
  if [ "$(id -u)" = 0 ]; then launcher+=(--allow-run-as-root); fi
fi
# Threads per rank default to the cores Slurm gave each task; an override after it still wins.
threads=()
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then threads=(train.threads="$SLURM_CPUS_PER_TASK"); fi

command=("${launcher[@]}" "$train" "$1" "${threads[@]}" "${@:2}")
echo "train.sh: job $SLURM_JOB_ID run $((${SLURM_RESTART_COUNT:-0} + 1)) on $SLURM_JOB_NUM_NODES" \
  "node(s), $SLURM_NTASKS ranks: ${command[*]}"

launcher_pid=""
forward_stop() {
  echo "train.sh: got $1: asking train to write its checkpoint and stop"
  if [ -n "$launcher_pid" ]; then kill -s USR1 "$launcher_pid" 2>/dev/null; fi
}
trap 'forward_stop USR1' USR1
trap 'forward_stop TERM' TERM

"${command[@]}" &
launcher_pid=$!
# A trapped signal interrupts wait; wait again until the launcher has really exited. Bash keeps
# the status of a finished child, so the last wait returns train's status either way.
while kill -0 "$launcher_pid" 2>/dev/null; do wait "$launcher_pid"; done
wait "$launcher_pid"
status=$?

if [ "$status" -eq 75 ]; then
  echo "train.sh: train stopped at a checkpoint (exit 75): requeueing job $SLURM_JOB_ID"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    echo "train.sh: scontrol requeue $SLURM_JOB_ID failed; resubmit to continue" >&2
    exit 75
  fi
  exit 0
fi
echo "train.sh: train exited with status $status"
exit "$status"
