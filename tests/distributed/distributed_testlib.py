"""Shared helpers of the multi-rank training tests: a tiny CCP dataset, job files, mpirun."""
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np


def run(cmd, check=True):
    """Runs cmd, its output printed; returns the CompletedProcess (stdout and stderr together in
    .stdout). check: exit on a non-zero status."""
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(result.stdout, flush=True)
    if check and result.returncode != 0:
        sys.exit(f"FAIL: {cmd[0]} exited with {result.returncode}")
    return result


def tiny_ccp_dataset(build, work):
    """40 CCP photos at 64x64 (exit 77 when CCP is absent)."""
    ccp = os.environ.get("CCP_DIR", "")
    if not os.path.isdir(os.path.join(ccp, "photos")):
        print(f"CCP not found at '{ccp}' (set CCP_DIR): skipped")
        sys.exit(77)
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "ccp_64.h5")
    if not os.path.exists(path):
        run([os.path.join(build, "ingest"), "ccp", "--root", ccp, "--out", path, "--height", "64",
             "--width", "64", "--limit", "40"])
    return path


def write_job(work, dataset, epochs, batch, limit, extra="", precision="auto"):
    path = os.path.join(work, f"job_b{batch}.ini")
    with open(path, "w") as f:
        f.write(f"[data]\ndataset = {dataset}\nlimit = {limit}\nval_limit = 8\n"
                f"[model]\narch = r18\nheight = 64\nwidth = 64\nprecision = {precision}\n"
                f"[train]\nbatch = {batch}\nepochs = {epochs}\nthreads = 1\nlog_every = 1\n{extra}"
                "[checkpoint]\nresume = auto\n")
    return path


def mpirun_prefix(ranks):
    prefix = ["mpirun", "--oversubscribe", "-np", str(ranks)]
    if os.geteuid() == 0:
        prefix.insert(1, "--allow-run-as-root")
    for name in ("FP_CONV_ALGORITHM", "OMP_NUM_THREADS", "FP_CUDA_EMULATOR_DEVICES"):
        if name in os.environ:
            prefix += ["-x", name]
    return prefix


def train_command(build, job, ranks, *overrides):
    command = [os.path.join(build, "train"), job, *overrides]
    return command if ranks == 1 else mpirun_prefix(ranks) + command


def logged_steps(steps_csv):
    try:
        with open(steps_csv) as f:
            return max(0, sum(1 for _ in f) - 1)
    except FileNotFoundError:
        return 0


def start_until_steps(cmd, steps_csv, steps, timeout=300):
    """Starts cmd (stdout and stderr piped together, as text) and returns it once steps.csv has
    `steps` steps, or once it has ended or `timeout` seconds have passed."""
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while process.poll() is None and time.time() < deadline and logged_steps(steps_csv) < steps:
        time.sleep(0.02)
    return process


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def read_params(path, group="params"):
    params = {}
    with h5py.File(path, "r") as f:
        f[group].visititems(
            lambda name, obj: params.__setitem__(name, obj[:]) if isinstance(obj, h5py.Dataset)
            else None)
    return params


def max_param_difference(path_a, path_b, group="params"):
    a, b = read_params(path_a, group), read_params(path_b, group)
    if a.keys() != b.keys():
        return float("inf")
    return max(float(np.max(np.abs(a[n] - b[n]))) for n in a)


def checkpoint_attribute(path, name):
    with h5py.File(path, "r") as f:
        return f.attrs[name]


def steps_table(steps_csv):
    """{step: (loss, grad_norm)} from a steps.csv (the branch loss columns, if any, ignored)."""
    rows = {}
    with open(steps_csv) as f:
        next(f)
        for line in f:
            step, _, loss, _, grad_norm = line.strip().split(",")[:5]
            rows[int(step)] = (float(loss), float(grad_norm))
    return rows
