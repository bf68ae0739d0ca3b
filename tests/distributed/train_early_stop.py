"""Early stopping (train.patience): a run whose val_miou stops improving ends before
train.epochs with exit 0 and says so; best.h5 holds the best epoch (its best_epoch attribute is
the epoch of the best val_miou printed) and Adam's moments by parameter name (format 3); run
again with resume=auto it trains no further step.

usage: train_early_stop.py BUILD_DIR WORK_DIR   (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import os
import re
import subprocess
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_testlib as lib  # noqa: E402


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    dataset = lib.tiny_ccp_dataset(build, work)
    # a learning rate far too high: val_miou stalls after a few epochs
    job = lib.write_job(work, dataset, epochs=40, batch=4, limit=16,
                        extra="patience = 2\nlr = 0.5\n")
    run_dir = os.path.join(work, "early")
    lib.remove_tree(run_dir)
    train = lib.train_command(build, job, 1, f"checkpoint.dir={run_dir}")
    first = subprocess.run(train, capture_output=True, text=True)
    print(first.stdout[-3000:], first.stderr[-2000:])
    if first.returncode != 0:
        sys.exit(f"FAIL: the run exited {first.returncode}")
    epochs = [(int(e), float(m)) for e, m in
              re.findall(r"^epoch (\d+)/\d+ .* val_miou ([0-9.]+) ", first.stdout, re.M)]
    if "early stop" not in first.stdout or len(epochs) >= 40:
        sys.exit(f"FAIL: no early stop after {len(epochs)} epochs")
    best_epoch, best = max(epochs, key=lambda item: (item[1], -item[0]))
    failures = 0
    if epochs[-1][0] - best_epoch != 2:
        failures += 1
        print(f"FAIL: stopped after epoch {epochs[-1][0]}, best was epoch {best_epoch}, patience 2")
    with h5py.File(os.path.join(run_dir, "best.h5"), "r") as f:
        # format 3: Adam's moments by parameter name, each shaped like its parameter
        moments_by_name = int(f.attrs["format_version"]) == 3 and all(
            f[f"optimizer/{m}/{name}"].shape == f[f"params/{name}"].shape
            for m in ("exp_avg", "exp_avg_sq") for name in f["params"])
        if not moments_by_name or len(f["optimizer/exp_avg"]) != len(f["params"]):
            failures += 1
            print("FAIL: best.h5 does not hold Adam's moments by parameter name (format 3)")
        if int(f.attrs["best_epoch"]) != best_epoch or int(f.attrs["epoch"]) != best_epoch:
            failures += 1
            print(f"FAIL: best.h5 says epoch {f.attrs['epoch']}, best_epoch "
                  f"{f.attrs['best_epoch']}; the log's best is epoch {best_epoch}")
    steps_before = lib.logged_steps(os.path.join(run_dir, "steps.csv"))
    again = subprocess.run(train, capture_output=True, text=True)
    steps_after = lib.logged_steps(os.path.join(run_dir, "steps.csv"))
    if again.returncode != 0 or "early stop" not in again.stdout or steps_after != steps_before:
        failures += 1
        print(f"FAIL: the rerun exited {again.returncode}, logged {steps_after - steps_before} "
              f"more steps:\n{again.stdout[-2000:]}")
    print(f"stopped after epoch {epochs[-1][0]} of 40, best val_miou {best:.4f} at epoch "
          f"{best_epoch}; rerun trained 0 steps: " + ("FAIL" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
