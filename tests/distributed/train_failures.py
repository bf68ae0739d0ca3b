"""Multi-rank failures end the job quickly and say why:
  - ranks started with different job settings are refused at start;
  - a rank killed with SIGKILL mid-run makes mpirun end the whole job (no hang).

usage: train_failures.py BUILD_DIR WORK_DIR   (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_testlib as lib  # noqa: E402

KILL_TIMEOUT_S = 60


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    dataset = lib.tiny_ccp_dataset(build, work)
    job = lib.write_job(work, dataset, epochs=50, batch=2, limit=16)
    train = os.path.join(build, "train")
    failures = 0

    mismatch = lib.mpirun_prefix(1) + [train, job, f"checkpoint.dir={work}/mismatch",
                                       "train.lr=1e-3", ":", "-np", "1", train, job,
                                       f"checkpoint.dir={work}/mismatch", "train.lr=2e-3"]
    result = subprocess.run(mismatch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=120)
    if result.returncode == 0 or "different job settings" not in result.stdout:
        failures += 1
        print(f"FAIL: ranks with different settings: exit {result.returncode}\n{result.stdout}")
    else:
        print("ok   ranks with different settings are refused")

    run_dir = os.path.join(work, "killed")
    lib.remove_tree(run_dir)
    process = subprocess.Popen(lib.train_command(build, job, 2, f"checkpoint.dir={run_dir}"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    steps_csv = os.path.join(run_dir, "steps.csv")
    while process.poll() is None and lib.logged_steps(steps_csv) < 2:
        time.sleep(0.05)
    ranks = subprocess.run(["pgrep", "-f", f"^{train} .*checkpoint.dir={run_dir}"],
                           stdout=subprocess.PIPE, text=True).stdout.split()
    if process.poll() is not None or not ranks:
        sys.exit(f"FAIL: the 2-rank run ended before a rank could be killed:\n"
                 f"{process.communicate()[0]}")
    killed_at = time.time()
    os.kill(int(ranks[-1]), signal.SIGKILL)
    try:
        out, _ = process.communicate(timeout=KILL_TIMEOUT_S)
        waited = time.time() - killed_at
        if process.returncode == 0:
            failures += 1
            print(f"FAIL: mpirun exited 0 after a rank was killed:\n{out}")
        else:
            print(f"ok   a killed rank ended the job in {waited:.1f} s (exit {process.returncode})")
    except subprocess.TimeoutExpired:
        process.kill()
        failures += 1
        print(f"FAIL: the job still ran {KILL_TIMEOUT_S} s after a rank was killed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
