"""Loss scaling (train.loss_scale), on the CPU backend and one rank:
  - fixed 2^10: every step's loss and gradient norm in steps.csv and the final weights and Adam
    moments are bit for bit those of the unscaled run (a power of two scales every gradient
    exactly; gradient_norm and the update divide it out again), in fp32 and, where the CPU runs
    it natively, bf16;
  - dynamic from 2^111, on the Extended U-Net with w_box = 1e6: at that scale the box branch's
    gradients overflow float32 as fp16 gradients overflow at ordinary scales, so the first steps
    are skipped and the scale halves until steps are finite; with train.loss_scale_interval 2 it
    then doubles after every 2 finite steps and overflows again; steps.csv's loss_scale and
    skipped columns follow exactly that rule, the checkpoint counts the skipped steps, and a run
    stopped mid-epoch and resumed ends bit for bit where the uninterrupted run ends (the scaler's
    state is in the checkpoint);
  - dynamic from 2^126 with interval 1 on the plain U-Net (finite at any scale): the scale
    doubles once and then stays at 2^127, the largest power of two a float holds;
  - a loss_scale_init that is not a power of two is refused naming the key.
fp16 itself needs a GPU (tests/gpu/run.sh); the CPU refuses it (tests/precision_choice.py).

usage: train_loss_scale.py BUILD_DIR WORK_DIR   (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import csv
import os
import signal
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_testlib as lib  # noqa: E402

FAILURES = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        FAILURES.append(what)


def train(build, job, run_dir, *overrides):
    lib.run(lib.train_command(build, job, 1, f"checkpoint.dir={run_dir}", *overrides))
    with open(os.path.join(run_dir, "steps.csv")) as f:
        return list(csv.DictReader(f))


def same_state(a, b):
    for group in ("params", "optimizer/exp_avg", "optimizer/exp_avg_sq", "buffers"):
        x, y = lib.read_params(a, group), lib.read_params(b, group)
        if x.keys() != y.keys() or any(not np.array_equal(x[n], y[n]) for n in x):
            return False
    return True


def check_fixed(build, work, job, precision):
    plain_dir = os.path.join(work, f"plain_{precision}")
    scaled_dir = os.path.join(work, f"fixed_{precision}")
    lib.remove_tree(plain_dir), lib.remove_tree(scaled_dir)
    plain = train(build, job, plain_dir, f"model.precision={precision}")
    scaled = train(build, job, scaled_dir, f"model.precision={precision}",
                   "train.loss_scale=fixed", "train.loss_scale_init=1024")
    check("loss_scale" not in plain[0], f"{precision}: no loss-scale columns without scaling")
    check(all(r["loss_scale"] == "1024" and r["skipped"] == "0" for r in scaled),
          f"{precision}: fixed scale 1024 on every step, none skipped")
    check([(r["loss"], r["grad_norm"]) for r in plain] ==
          [(r["loss"], r["grad_norm"]) for r in scaled],
          f"{precision}: {len(plain)} steps' loss and gradient norm equal to the unscaled run's")
    check(same_state(os.path.join(plain_dir, "last.h5"), os.path.join(scaled_dir, "last.h5")),
          f"{precision}: weights, BN buffers and Adam moments bit for bit the unscaled run's")


def expected_scales(rows, initial, interval):
    """The (scale, skipped) each step must show under GradScaler's rule capped at 2^127, given
    which steps had non-finite gradients (a skipped step is one whose gradient norm is not
    finite)."""
    scale, good, out = initial, 0, []
    for r in rows:
        finite = np.isfinite(float(r["grad_norm"]))
        out.append((scale, not finite))
        if finite:
            good += 1
            if good == interval:
                scale, good = min(scale * 2, 2.0 ** 127), 0
        else:
            scale, good = scale / 2, 0
    return out


def check_dynamic(build, work, job):
    initial, interval = 2.0 ** 111, 2
    overrides = ["train.loss_scale=dynamic", f"train.loss_scale_init={initial:.17g}",
                 f"train.loss_scale_interval={interval}", "model.precision=fp32",
                 "model.branches=trained", "train.box_loss_weight=1e6"]
    full_dir, resumed_dir = os.path.join(work, "dynamic"), os.path.join(work, "dynamic_resumed")
    lib.remove_tree(full_dir), lib.remove_tree(resumed_dir)
    rows = train(build, job, full_dir, *overrides, "train.epochs=4")
    got = [(float(r["loss_scale"]), r["skipped"] == "1") for r in rows]
    skipped = sum(s for _, s in got)
    check(0 < skipped < len(rows), f"dynamic: {skipped} of {len(rows)} steps skipped (overflow "
          "at first, then finite)")
    check(got == expected_scales(rows, initial, interval),
          "dynamic: steps.csv's loss_scale and skipped follow the halve/double rule")
    check(all(np.isfinite(float(r["loss"])) for r in rows), "dynamic: every loss finite")
    last = os.path.join(full_dir, "last.h5")
    check(int(lib.checkpoint_attribute(last, "skipped_steps")) == skipped,
          "dynamic: the checkpoint counts the skipped steps")
    params = lib.read_params(last)
    check(all(np.isfinite(p).all() for p in params.values()), "dynamic: final weights finite")

    command = lib.train_command(build, job, 1, f"checkpoint.dir={resumed_dir}", *overrides,
                                "train.epochs=4")
    process = lib.start_until_steps(command, os.path.join(resumed_dir, "steps.csv"), 6)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    print(process.communicate(timeout=300)[0])
    check(process.returncode == 75, f"dynamic: the run stopped by SIGTERM exited "
          f"{process.returncode} (75 expected)")
    resumed = train(build, job, resumed_dir, *overrides, "train.epochs=4")
    check([(r["loss"], r["grad_norm"], r["loss_scale"], r["skipped"]) for r in resumed] ==
          [(r["loss"], r["grad_norm"], r["loss_scale"], r["skipped"]) for r in rows],
          "dynamic: a run stopped mid-epoch and resumed logs the same steps as the uninterrupted one")
    check(same_state(last, os.path.join(resumed_dir, "last.h5")),
          "dynamic: the resumed run ends bit for bit where the uninterrupted one ends")


def check_cap(build, work, job):
    run_dir = os.path.join(work, "cap")
    lib.remove_tree(run_dir)
    rows = train(build, job, run_dir, "train.loss_scale=dynamic",
                 f"train.loss_scale_init={2.0 ** 126:.17g}", "train.loss_scale_interval=1",
                 "model.precision=fp32", "train.epochs=1")
    got = [(float(r["loss_scale"]), r["skipped"]) for r in rows]
    check(got == [(2.0 ** 126, "0")] + [(2.0 ** 127, "0")] * (len(rows) - 1),
          f"dynamic: the scale grows to 2^127 and stays there ({len(rows)} steps)")


def check_refusal(build, work, job):
    result = subprocess.run([os.path.join(build, "train"), job, "train.loss_scale=fixed",
                             "train.loss_scale_init=1000",
                             f"checkpoint.dir={os.path.join(work, 'refused')}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(result.returncode == 1 and "train.loss_scale_init = 1000 is not a power of two"
          in result.stdout, "a loss scale that is not a power of two is refused naming the key")


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    dataset = lib.tiny_ccp_dataset(build, work)
    job = lib.write_job(work, dataset, epochs=2, batch=4, limit=16, extra="seed = 3\n")
    check_fixed(build, work, job, "fp32")
    bench = subprocess.run([os.path.join(build, "bench"), "--arch", "r18", "--height", "64",
                            "--width", "64", "--batch", "1", "--warmup", "0", "--steps", "1",
                            "--infer-batches", "1", "--precision", "bf16"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if bench.returncode == 0:
        check_fixed(build, work, job, "bf16")
    else:
        print("bf16: not checked, the CPU does not run it natively")
    check_dynamic(build, work, job)
    check_cap(build, work, job)
    check_refusal(build, work, job)
    print("loss scaling: " + ("FAIL" if FAILURES else "ok"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
