"""checkpoint.dir belongs to one run at a time: a second `train` on the directory of a running
one stops at once (exit 1, naming the directory and the other run) and the first finishes
untouched; the temporary checkpoint files a killed run left (last.h5.tmp.<pid>,
best.h5.tmp.<pid>) are removed when the next run starts.

usage: train_checkpoint_dir.py BUILD_DIR WORK_DIR   (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_testlib as lib  # noqa: E402


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    dataset = lib.tiny_ccp_dataset(build, work)
    job = lib.write_job(work, dataset, epochs=3, batch=4, limit=16)
    run_dir = os.path.join(work, "shared_dir")
    lib.remove_tree(run_dir)
    os.makedirs(run_dir)
    for stale in ("last.h5.tmp.99999", "best.h5.tmp.12345"):
        open(os.path.join(run_dir, stale), "w").write("left by a killed run")
    train = lib.train_command(build, job, 1, f"checkpoint.dir={run_dir}")
    first = lib.start_until_steps(train, os.path.join(run_dir, "steps.csv"), 1)
    second = subprocess.run(train, capture_output=True, text=True, timeout=120)
    out, _ = first.communicate(timeout=300)
    failures = 0
    if second.returncode != 1 or f"checkpoint.dir {run_dir} is in use by another train (pid " \
            f"{first.pid}" not in second.stderr:
        failures += 1
        print(f"FAIL: the second run exited {second.returncode}:\n{second.stderr[-1500:]}")
    if first.returncode != 0:
        failures += 1
        print(f"FAIL: the first run exited {first.returncode}:\n{out[-1500:]}")
    if "train: removed 2 temporary files" not in out or glob.glob(os.path.join(run_dir,
                                                                                   "*.tmp.*")):
        failures += 1
        print(f"FAIL: stale temporary files not removed:\n{out[:1500]}")
    steps = lib.logged_steps(os.path.join(run_dir, "steps.csv"))
    if steps != 12:
        failures += 1
        print(f"FAIL: steps.csv has {steps} steps, expected 12 (3 epochs of 4)")
    print("second run refused: " + second.stderr.strip().splitlines()[-1] if second.stderr else "")
    print("checkpoint.dir lock and clean-up: " + ("FAIL" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
