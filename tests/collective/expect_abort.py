"""Runs a command that must fail: non-zero exit within TIMEOUT seconds, and every NEEDLE in its
output. The command runs in its own process group, killed whole on timeout (ranks included).

usage: expect_abort.py TIMEOUT NEEDLE [NEEDLE ...] -- COMMAND [ARG ...]
"""
import os
import signal
import subprocess
import sys
import time


def main():
    split = sys.argv.index("--")
    timeout, needles, command = float(sys.argv[1]), sys.argv[2:split], sys.argv[split + 1:]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        print(output)
        print(f"FAIL: still running after {timeout:.0f} s: a failing rank did not stop the job")
        return 1
    elapsed = time.monotonic() - started
    print(output)
    missing = [needle for needle in needles if needle not in output]
    if process.returncode == 0 or missing:
        print(f"FAIL: exit status {process.returncode}, missing from the output: {missing}")
        return 1
    print(f"ok: exit status {process.returncode} after {elapsed:.1f} s, output names {needles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
