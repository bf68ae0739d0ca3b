"""A training run stopped by a signal and resumed ends exactly where an uninterrupted run ends:
the same per-step losses (steps.csv, bit for bit as printed with 9 digits) and the same final
weights. Each stopped run must exit 75 after writing its checkpoint.

usage: train_resume.py BUILD_DIR WORK_DIR [RANKS [phases]]   (CCP_DIR: the CCP copy; exit 77 if
absent). With `phases`, the job has a first epoch with the encoder frozen (train.frozen_epochs),
and the two stops fall in that phase and in the next.
With RANKS > 1 the runs go through mpirun and the stop signal is SIGUSR1, which mpirun forwards
to every rank (SIGTERM would make mpirun kill the job); with 1 rank it is SIGTERM.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_testlib as lib  # noqa: E402


def stop_midway(cmd, steps_csv, after_steps, sig):
    """Starts cmd, signals it once steps.csv has after_steps steps, returns its exit status."""
    process = lib.start_until_steps(cmd, steps_csv, after_steps)
    if process.poll() is None:
        process.send_signal(sig)
    out, _ = process.communicate(timeout=300)
    print(out)
    return process.returncode


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    ranks = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    phases = len(sys.argv) > 4 and sys.argv[4] == "phases"
    dataset = lib.tiny_ccp_dataset(build, work)
    # phases: a frozen-encoder epoch first, so the stops fall on both sides of the switch
    extra = "frozen_epochs = 1\nfrozen_lr = 3e-3\n" if phases else ""
    job = lib.write_job(work, dataset, epochs=3 if phases else 4, batch=4 // ranks, limit=16,
                        extra=extra)
    sig = signal.SIGTERM if ranks == 1 else signal.SIGUSR1

    whole = os.path.join(work, f"whole_{ranks}")
    lib.remove_tree(whole)  # a finished run left there would be "resumed" as it is
    lib.run(lib.train_command(build, job, ranks, f"checkpoint.dir={whole}"))

    stopped = os.path.join(work, f"stopped_{ranks}")
    lib.remove_tree(stopped)
    train = lib.train_command(build, job, ranks, f"checkpoint.dir={stopped}")
    stops = 0
    for after_steps in (3, 9):  # mid-epoch, then the next stop after resuming
        status = stop_midway(train, os.path.join(stopped, "steps.csv"), after_steps, sig)
        if status == 0:
            break  # finished before the signal landed; the comparison below still holds
        if status != 75:
            sys.exit(f"FAIL: a stopped run exited {status}, expected 75")
        stops += 1
    while status == 75:
        status = lib.run(train, check=False).returncode
    if status != 0:
        sys.exit(f"FAIL: the resumed run exited {status}")
    if stops == 0:
        sys.exit("FAIL: no run was stopped by the signal (it finished too fast)")

    failures = 0
    if phases:  # each phase starts its own one-cycle schedule at its peak / 25
        lrs = [float(line.split(",")[3]) for line in
               open(os.path.join(whole, "steps.csv")).read().splitlines()[1:]]
        if abs(lrs[0] - 3e-3 / 25) > 1e-12 or abs(lrs[4] - 1e-3 / 25) > 1e-12:
            failures += 1
            print(f"FAIL: lr of steps 1 and 5 are {lrs[0]:g} and {lrs[4]:g}, expected "
                  f"{3e-3 / 25:g} (frozen phase) and {1e-3 / 25:g} (second phase)")
    want = open(os.path.join(whole, "steps.csv")).read()
    got = open(os.path.join(stopped, "steps.csv")).read()
    if want != got:
        failures += 1
        print("FAIL: steps.csv differs between the uninterrupted and the stopped/resumed run")
        print("uninterrupted:\n" + want + "stopped and resumed:\n" + got)
    difference = lib.max_param_difference(os.path.join(whole, "last.h5"),
                                          os.path.join(stopped, "last.h5"))
    print(f"{stops} stop(s); final weights differ by at most {difference:g}")
    if difference != 0.0:
        failures += 1
        print("FAIL: the final weights differ")
    # what validation saw: the BN statistics saved and the best validation mIoU (per-rank BN
    # statistics once made a resumed 2-rank run validate, and record, another model)
    for path in ("last.h5", "best.h5"):
        buffers = lib.max_param_difference(os.path.join(whole, path), os.path.join(stopped, path),
                                           "buffers")
        best = [lib.checkpoint_attribute(os.path.join(run, path), "best_metric")
                for run in (whole, stopped)]
        print(f"{path}: BN statistics differ by at most {buffers:g}; best_metric {best[0]!r} "
              f"and {best[1]!r}")
        if buffers != 0.0 or best[0] != best[1]:
            failures += 1
            print(f"FAIL: {path} differs between the uninterrupted and the resumed run")
    print("exact resume: " + ("FAIL" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
