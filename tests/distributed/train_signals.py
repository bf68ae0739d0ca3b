"""Ctrl-C (SIGINT) stops train like SIGTERM, and further signals during the graceful stop do not
interrupt it: after SIGINT then two SIGTERMs, train exits 75 with last.h5 written and no
temporary file left, and a rerun with resume=auto finishes.

usage: train_signals.py BUILD_DIR WORK_DIR   (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import glob
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_testlib as lib  # noqa: E402


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    dataset = lib.tiny_ccp_dataset(build, work)
    job = lib.write_job(work, dataset, epochs=3, batch=4, limit=16)
    run_dir = os.path.join(work, "signals")
    lib.remove_tree(run_dir)
    train = lib.train_command(build, job, 1, f"checkpoint.dir={run_dir}")
    process = lib.start_until_steps(train, os.path.join(run_dir, "steps.csv"), 2)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGTERM):
        if process.poll() is None:
            process.send_signal(sig)
        time.sleep(0.05)
    out, _ = process.communicate(timeout=300)
    print(out[-2000:])
    failures = 0
    if process.returncode != 75:
        failures += 1
        print(f"FAIL: exit {process.returncode} after SIGINT and two SIGTERMs, expected 75")
    if not os.path.exists(os.path.join(run_dir, "last.h5")):
        failures += 1
        print("FAIL: no last.h5")
    left = glob.glob(os.path.join(run_dir, "*.tmp*"))
    if left:
        failures += 1
        print(f"FAIL: temporary files left: {left}")
    rerun = subprocess.run(train, capture_output=True, text=True)
    if rerun.returncode != 0 or "resumed from" not in rerun.stdout:
        failures += 1
        print(f"FAIL: the rerun exited {rerun.returncode}:\n{rerun.stdout[-1500:]}")
    print("signals: " + ("FAIL" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
