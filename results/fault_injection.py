#!/usr/bin/python3
"""Fault injection: SIGKILL one random rank of a 2-rank `mpirun` at a random moment of `ingest`,
`train` and `parse_catalog`, rerun the same command until it exits 0, and check that the result
equals an uninterrupted run's and that no temporary file is left.

usage: results/fault_injection.py BUILD_DIR WORK_DIR [--tries N] [--seed S]
                                  [--commands ingest,train,parse_catalog] [--only-try K]
       (CCP_DIR: the CCP copy, default ../shared/data/ccp from the repository; exit 77 without it)

Per command: one uninterrupted reference run (its wall time T, mpirun start to exit, is the
window the kill moments are drawn from) and a second uninterrupted run that must equal it
(so that a difference after a kill is not plain nondeterminism). Then N tries; try k draws, from
random.Random(f"{seed}:{command}") in order, the rank r (0 or 1) and u in [0, 1): the run is
started in a fresh output directory, at u*T seconds after its start the process of rank r (a
child of mpirun whose environment has OMPI_COMM_WORLD_RANK=r) gets SIGKILL, and mpirun ends the
rest. The state right after the kill is checked (nothing incomplete under a final name), then
the same command is rerun until it exits 0 (at most 4 reruns) and the result is compared with
the reference (what "equal" means per command: see results/fault_injection.md and the
compare_* functions). `--only-try K` draws the same sequence and runs only try K (a reproducer).

What each command runs (tiny, a try takes seconds on 2 cores):
  ingest:        mpirun -np 2 ingest ccp --root CCP --out OUT/ccp.h5 --height 64 --width 64
                 --limit 120  (writes ccp.h5 and ccp_tags.h5)
  train:         mpirun -np 2 train JOB checkpoint.resume=auto: r18 64x64 fp32, 16 images of
                 the reference ingest output, batch 2 per rank, 3 epochs (12 steps),
                 FP_CONV_ALGORITHM=direct, OMP_NUM_THREADS=1, threads 1
  parse_catalog: mpirun -np 2 parse_catalog JOB: the reference train run's last.h5 over a
                 directory of 48 symlinked CCP photos, chunk 4 (12 chunks), batch 4, fp32
"""
import argparse
import filecmp
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MAX_RERUNS = 4
TEARDOWN_TIMEOUT_S = 60
RUN_TIMEOUT_S = 300
INGEST_LIMIT = 120
CATALOG_PHOTOS = 48
CATALOG_CHUNKS = 12


def h5py_module():
    os.environ.pop("HDF5_PLUGIN_PATH", None)
    import h5py
    import hdf5plugin  # noqa: F401  (zstd, filter 32015)
    return h5py


# ----------------------------------------------------------------------------- processes

def mpirun_prefix():
    prefix = ["mpirun", "--oversubscribe", "-np", "2"]
    if os.geteuid() == 0:
        prefix.insert(1, "--allow-run-as-root")
    for name in ("FP_CONV_ALGORITHM", "OMP_NUM_THREADS"):
        prefix += ["-x", name]
    return prefix


def run_env():
    return dict(os.environ, OMP_NUM_THREADS="1", FP_CONV_ALGORITHM="direct")


def start(command, log_path):
    log = open(log_path, "a")
    log.write("+ " + " ".join(command) + "\n")
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=run_env(),
                               start_new_session=True)
    log.close()
    return process


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return name, fields[0], int(fields[1]), int(fields[3])  # comm, state, ppid, session


def session_pids(session):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            _, state, _, sid = proc_stat(int(entry))
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
        if sid == session and state != "Z":
            pids.append(int(entry))
    return pids


def rank_pids(mpirun_pid, program):
    """{rank: pid} of the live `program` processes mpirun started."""
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            name, state, ppid, _ = proc_stat(pid)
            if ppid != mpirun_pid or state == "Z" or name != program[:15]:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
            continue
        for variable in environment:
            if variable.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(variable.split(b"=")[1])] = pid
    return ranks


def end_session(process, timeout):
    """Waits for mpirun and everything in its session to end; SIGKILLs what is left after
    `timeout` seconds. Returns (mpirun's exit status, True if something had to be killed)."""
    deadline = time.time() + timeout
    while time.time() < deadline and (process.poll() is None or session_pids(process.pid)):
        time.sleep(0.02)
    hung = False
    for pid in session_pids(process.pid):
        hung = True
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    return process.returncode, hung


def run_to_end(command, log_path):
    """Runs command uninterrupted; returns (exit status, seconds)."""
    began = time.monotonic()
    process = start(command, log_path)
    status, hung = end_session(process, RUN_TIMEOUT_S)
    if hung:
        status = "hung"
    return status, time.monotonic() - began


def killed_run(command, program, log_path, rank, moment):
    """Starts command, SIGKILLs rank `rank` `moment` seconds after the start (or as soon after
    as that rank's process exists). Returns a dict: landed (the signal was sent to a live rank
    process), at (seconds after the start it was sent), status (mpirun's exit status), hung."""
    began = time.monotonic()
    process = start(command, log_path)
    sent_at = None
    while process.poll() is None:
        now = time.monotonic() - began
        if now >= moment:
            pid = rank_pids(process.pid, program).get(rank)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                    sent_at = time.monotonic() - began
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.001)
        else:
            time.sleep(min(0.005, moment - now))
    status, hung = end_session(process, TEARDOWN_TIMEOUT_S)
    with open(log_path, "a") as log:
        log.write(f"# SIGKILL rank {rank} at {sent_at} s (drawn {moment:.3f} s): exit {status}"
                  f"{' HUNG' if hung else ''}\n")
    return {"landed": sent_at is not None, "at": sent_at, "status": status, "hung": hung}


# ----------------------------------------------------------------------------- HDF5 comparison

def h5_differences(path_a, path_b, skip_attributes=()):
    """Every object, attribute and dataset value of two HDF5 files compared; [] when equal.
    Floats are compared bit for bit except that NaN equals NaN."""
    import numpy as np
    h5py = h5py_module()

    def equal(x, y):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype.kind == "f":
            return np.array_equal(x, y, equal_nan=True)
        if x.dtype.kind == "O" or (x.dtype.fields and any(
                f[0].kind == "O" for f in x.dtype.fields.values())):
            return x.tolist() == y.tolist()
        return x.tobytes() == y.tobytes()

    differences = []
    with h5py.File(path_a, "r") as a, h5py.File(path_b, "r") as b:
        def collect(f):
            objects = {"/": f}
            f.visititems(lambda name, obj: objects.__setitem__("/" + name, obj))
            return objects
        oa, ob = collect(a), collect(b)
        for name in sorted(set(oa) ^ set(ob)):
            differences.append(f"{name}: only in {path_a if name in oa else path_b}")
        for name in sorted(set(oa) & set(ob)):
            x, y = oa[name], ob[name]
            if type(x) is not type(y):
                differences.append(f"{name}: kind differs")
                continue
            attrs = (set(x.attrs) | set(y.attrs)) - set(skip_attributes)
            for attr in sorted(attrs):
                if attr not in x.attrs or attr not in y.attrs:
                    differences.append(f"{name} attr {attr}: missing in one")
                elif not equal(x.attrs[attr], y.attrs[attr]):
                    differences.append(f"{name} attr {attr}: differs")
            if isinstance(x, h5py.Dataset) and not equal(x[()], y[()]):
                differences.append(f"{name}: values differ")
    return differences


def h5_readable(path):
    """'' when every dataset of the file reads, else why not."""
    h5py = h5py_module()
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        return ""
    except Exception as e:  # noqa: BLE001  (any failure to read is the finding)
        return f"{type(e).__name__}: {e}"


def temporaries(directory):
    found = []
    for root, _, files in os.walk(directory):
        found += [os.path.relpath(os.path.join(root, n), directory) for n in files
                  if ".tmp" in n]
    return sorted(found)


# ----------------------------------------------------------------------------- the commands

class Ingest:
    name = program = "ingest"
    skip_attributes = ()

    def __init__(self, build, work, ccp):
        self.build, self.work, self.ccp = build, os.path.join(work, "ingest"), ccp
        self.out_dir = os.path.join(self.work, "out")
        self.reference_dir = os.path.join(self.work, "reference")
        self.files = ("ccp.h5", "ccp_tags.h5")

    def command(self):
        return mpirun_prefix() + [
            os.path.join(self.build, "ingest"), "ccp", "--root", self.ccp, "--out",
            os.path.join(self.out_dir, "ccp.h5"), "--height", "64", "--width", "64", "--limit",
            str(INGEST_LIMIT)]

    def fresh(self):
        shutil.rmtree(self.out_dir, ignore_errors=True)
        os.makedirs(self.out_dir)

    def keep_as_reference(self, destination):
        shutil.rmtree(destination, ignore_errors=True)
        shutil.move(self.out_dir, destination)

    def after_kill(self):
        """Nothing under a final name unless complete; both files published together."""
        problems = []
        present = [n for n in self.files if os.path.exists(os.path.join(self.out_dir, n))]
        if present and len(present) != len(self.files):
            problems.append(f"after the kill only {present} exist (published apart)")
        for n in present:
            if not filecmp.cmp(os.path.join(self.out_dir, n),
                               os.path.join(self.reference_dir, n), shallow=False):
                problems.append(f"after the kill {n} exists but is not the complete file")
        return problems

    def compare(self, reference_dir):
        """Byte-identical files (docs/dataset.md: no timestamps, identical for any rank count);
        on a byte difference the datasets are compared too, to say where."""
        problems = []
        for n in self.files:
            got, want = os.path.join(self.out_dir, n), os.path.join(reference_dir, n)
            if not os.path.exists(got):
                problems.append(f"{n} missing")
            elif not filecmp.cmp(got, want, shallow=False):
                problems.append(f"{n} not byte-identical: {h5_differences(want, got)[:5]}")
        return problems

    def state(self):
        return temporaries(self.out_dir)


class Train:
    name = program = "train"
    skip_attributes = ()

    def __init__(self, build, work, dataset):
        self.build, self.work = build, os.path.join(work, "train")
        self.out_dir = os.path.join(self.work, "run")
        self.reference_dir = os.path.join(self.work, "reference")
        os.makedirs(self.work, exist_ok=True)
        self.job = os.path.join(self.work, "job.ini")
        with open(self.job, "w") as f:
            f.write(f"[data]\ndataset = {dataset}\nlimit = 16\nval_limit = 8\n"
                    "[model]\narch = r18\nheight = 64\nwidth = 64\nprecision = fp32\n"
                    "[train]\nbatch = 2\nepochs = 3\nthreads = 1\nlog_every = 1\n"
                    f"[checkpoint]\ndir = {self.out_dir}\nresume = auto\n")

    def command(self):
        return mpirun_prefix() + [os.path.join(self.build, "train"), self.job,
                                  "checkpoint.resume=auto"]

    def fresh(self):
        shutil.rmtree(self.out_dir, ignore_errors=True)

    def keep_as_reference(self, destination):
        shutil.rmtree(destination, ignore_errors=True)
        shutil.move(self.out_dir, destination)

    def after_kill(self):
        """A checkpoint under its final name must be complete (every dataset reads)."""
        problems = []
        for n in ("last.h5", "best.h5"):
            path = os.path.join(self.out_dir, n)
            if os.path.exists(path):
                why = h5_readable(path)
                if why:
                    problems.append(f"after the kill {n} does not read: {why}")
        return problems

    def compare(self, reference_dir):
        """steps.csv byte for byte; last.h5 and best.h5: every dataset (params, buffers, Adam
        moments, ...) bit for bit and every attribute equal."""
        problems = []
        got = os.path.join(self.out_dir, "steps.csv")
        if not os.path.exists(got):
            problems.append("steps.csv missing")
        elif open(got).read() != open(os.path.join(reference_dir, "steps.csv")).read():
            problems.append("steps.csv differs")
        for n in ("last.h5", "best.h5"):
            path = os.path.join(self.out_dir, n)
            if not os.path.exists(path):
                problems.append(f"{n} missing")
                continue
            d = h5_differences(os.path.join(reference_dir, n), path)
            if d:
                problems.append(f"{n}: {len(d)} differences, e.g. {d[:5]}")
        return problems

    def state(self):
        return temporaries(self.out_dir)


class ParseCatalog:
    name = program = "parse_catalog"
    skip_attributes = ("created",)  # the master's UTC creation time

    def __init__(self, build, work, ccp, checkpoint):
        self.build, self.work = build, os.path.join(work, "parse_catalog")
        self.out_dir = os.path.join(self.work, "out")
        self.reference_dir = os.path.join(self.work, "reference")
        photos = os.path.join(self.work, "photos")
        shutil.rmtree(photos, ignore_errors=True)
        os.makedirs(photos)
        names = sorted(n for n in os.listdir(os.path.join(ccp, "photos")) if n.endswith(".jpg"))
        for n in names[:CATALOG_PHOTOS]:
            os.symlink(os.path.join(ccp, "photos", n), os.path.join(photos, n))
        self.checkpoint = os.path.join(self.work, "checkpoint.h5")
        shutil.copyfile(checkpoint, self.checkpoint)
        self.job = os.path.join(self.work, "job.ini")
        with open(self.job, "w") as f:
            f.write(f"[catalog]\nsource = {photos}\n"
                    f"[model]\ncheckpoint = {self.checkpoint}\nbatch = 4\nthreads = 1\n"
                    "precision = fp32\n"
                    f"[output]\ndir = {self.out_dir}\n"
                    f"[schedule]\nchunk = {CATALOG_PHOTOS // CATALOG_CHUNKS}\n"
                    "progress_seconds = 0\n")

    def command(self):
        return mpirun_prefix() + [os.path.join(self.build, "parse_catalog"), self.job]

    def fresh(self):
        shutil.rmtree(self.out_dir, ignore_errors=True)

    def keep_as_reference(self, destination):
        shutil.rmtree(destination, ignore_errors=True)
        shutil.move(self.out_dir, destination)  # the master's virtual datasets are relative

    def after_kill(self):
        """master.h5 only when complete; every shard and part under a final name reads."""
        problems = []
        master = os.path.join(self.out_dir, "master.h5")
        if os.path.exists(master):
            d = h5_differences(os.path.join(self.reference_dir, "master.h5"), master,
                               self.skip_attributes)
            if d:
                problems.append(f"after the kill master.h5 exists but differs: {d[:5]}")
        for sub in ("parts", "shards"):
            directory = os.path.join(self.out_dir, sub)
            for n in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
                if n.endswith(".h5"):
                    why = h5_readable(os.path.join(directory, n))
                    if why:
                        problems.append(f"after the kill {sub}/{n} does not read: {why}")
        return problems

    def compare(self, reference_dir):
        """master.h5: every dataset (through the virtual datasets: ids, catalog_index, masks,
        every statistic, /failed, /shard_table, totals, palette) and every root attribute but
        `created` equal; the manifest lists every chunk exactly once; parts/ empty."""
        problems = []
        master = os.path.join(self.out_dir, "master.h5")
        if not os.path.exists(master):
            return ["master.h5 missing"]
        d = h5_differences(os.path.join(reference_dir, "master.h5"), master,
                           self.skip_attributes)
        if d:
            problems.append(f"master.h5: {len(d)} differences, e.g. {d[:5]}")
        with open(os.path.join(self.out_dir, "manifest")) as f:
            done = [int(line.split()[1]) for line in f if line.startswith("done ")]
        if sorted(done) != list(range(CATALOG_CHUNKS)):
            problems.append(f"manifest done lines {sorted(done)}: not each chunk once")
        parts = os.path.join(self.out_dir, "parts")
        if os.path.isdir(parts) and os.listdir(parts):
            problems.append(f"parts/ not empty: {sorted(os.listdir(parts))}")
        return problems

    def state(self):
        return temporaries(self.out_dir)


# ----------------------------------------------------------------------------- the driver

def reference(cmd, logs):
    """Two uninterrupted runs; the first is the reference (kept), the second must equal it.
    Returns the first run's wall time."""
    cmd.fresh()
    status, seconds = run_to_end(cmd.command(), os.path.join(logs, f"{cmd.name}_reference.log"))
    if status != 0:
        sys.exit(f"FAIL: the uninterrupted {cmd.name} run exited {status} "
                 f"(log: {logs}/{cmd.name}_reference.log)")
    cmd.keep_as_reference(cmd.reference_dir)
    cmd.fresh()
    status, seconds2 = run_to_end(cmd.command(), os.path.join(logs, f"{cmd.name}_repeat.log"))
    problems = cmd.compare(cmd.reference_dir) if status == 0 else [f"exited {status}"]
    if problems:
        sys.exit(f"FAIL: a second uninterrupted {cmd.name} run differs from the first: "
                 f"{problems}")
    print(f"{cmd.name}: uninterrupted run {seconds:.2f} s (repeat {seconds2:.2f} s, identical)",
          flush=True)
    return seconds


def run_tries(cmd, tries, seed, only_try, logs):
    window = reference(cmd, logs)
    rng = random.Random(f"{seed}:{cmd.name}")
    counts = {"tries": 0, "landed": 0, "reruns": 0, "identical": 0, "leftover": 0,
              "failures": 0, "lock_refusals": 0, "hung": 0}
    rows = []
    for k in range(tries):
        rank, u = rng.randrange(2), rng.random()
        if only_try is not None and k != only_try:
            continue
        moment = u * window
        cmd.fresh()
        log = os.path.join(logs, f"{cmd.name}_try{k:02d}.log")
        if os.path.exists(log):
            os.remove(log)
        kill = killed_run(cmd.command(), cmd.program, log, rank, moment)
        counts["tries"] += 1
        notes = []
        if kill["hung"]:
            counts["hung"] += 1
            notes.append("the killed job did not end by itself within "
                         f"{TEARDOWN_TIMEOUT_S} s")
        landed = kill["landed"] and kill["status"] != 0
        counts["landed"] += landed
        if kill["landed"] and kill["status"] == 0:
            notes.append("the killed rank had finished its part (mpirun exited 0)")
        notes += cmd.after_kill()
        left_after_kill = cmd.state()
        status, reruns = kill["status"], 0
        while status != 0 and reruns < MAX_RERUNS:
            reruns += 1
            before = os.path.getsize(log)
            status, _ = run_to_end(cmd.command(), log)
            with open(log) as f:
                f.seek(before)
                text = f.read()
            info = re.search(r"resuming [^\n]*?(\d+ of \d+ chunks done before)|"
                             r"removed (\d+) temporary checkpoint file", text)
            if info:
                notes.append(f"rerun {reruns}: " + (info.group(1) or
                                                     f"removed {info.group(2)} tmp checkpoint"))
            if "is in use by another" in text:
                counts["lock_refusals"] += 1
                notes.append(f"rerun {reruns} refused by a lock")
        counts["reruns"] += reruns
        problems = [f"reruns exited {status} {MAX_RERUNS} times"] if status != 0 else \
            cmd.compare(cmd.reference_dir)
        identical = not problems
        counts["identical"] += identical
        left = cmd.state()
        counts["leftover"] += bool(left)
        if left:
            notes.append(f"left after the rerun: {left}")
        failed = bool(problems) or bool(left) or kill["hung"] or any(
            n.startswith("after the kill") or "refused by a lock" in n for n in notes)
        counts["failures"] += failed
        at = "-" if kill["at"] is None else f"{kill['at']:.3f}"
        row = (f"{cmd.name} try {k:2d}: rank {rank} u={u:.4f} drawn {moment:.3f} s killed at "
               f"{at} s exit {kill['status']} landed={'yes' if landed else 'no'} "
               f"tmp-after-kill={len(left_after_kill)} reruns={reruns} "
               f"identical={'yes' if identical else 'NO'}"
               + (f" {'FAIL' if failed else 'note'}: {'; '.join(problems + notes)}"
                  if problems or notes else ""))
        print(row, flush=True)
        rows.append(row)
    return window, counts, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build")
    parser.add_argument("work")
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--commands", default="ingest,train,parse_catalog")
    parser.add_argument("--only-try", type=int, default=None)
    args = parser.parse_args()
    build, work = os.path.abspath(args.build), os.path.abspath(args.work)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    ccp = os.environ.get("CCP_DIR") or os.path.join(REPO, "..", "shared", "data", "ccp")
    if not os.path.isdir(os.path.join(ccp, "photos")):
        print(f"CCP not found at '{ccp}' (set CCP_DIR): skipped")
        return 77
    commands = args.commands.split(",")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    print(f"fault injection: seed {seed}, {args.tries} tries per command, build {build}, "
          f"work {work}, CCP {ccp}", flush=True)
    began = time.time()

    # train needs the ingest output and parse_catalog the train output: make what a selection
    # of commands skips, without tries
    ingest = Ingest(build, work, ccp)
    summary = {}
    if "ingest" in commands:
        summary["ingest"] = run_tries(ingest, args.tries, seed, args.only_try, logs)
    elif not os.path.exists(os.path.join(ingest.reference_dir, "ccp.h5")):
        reference(ingest, logs)
    train = Train(build, work, os.path.join(ingest.reference_dir, "ccp.h5"))
    if "train" in commands:
        summary["train"] = run_tries(train, args.tries, seed, args.only_try, logs)
    elif "parse_catalog" in commands and not os.path.exists(
            os.path.join(train.reference_dir, "last.h5")):
        reference(train, logs)
    if "parse_catalog" in commands:
        catalog = ParseCatalog(build, work, ccp, os.path.join(train.reference_dir, "last.h5"))
        summary["parse_catalog"] = run_tries(catalog, args.tries, seed, args.only_try, logs)

    print(f"\nseed {seed}; {time.time() - began:.0f} s in all; logs in {logs}")
    print("| command | uninterrupted s | tries | kills landed before completion | reruns | "
          "identical | leftover temporaries | lock refusals | hung | failures |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    total_failures = 0
    for name, (window, c, _) in summary.items():
        print(f"| {name} | {window:.2f} | {c['tries']} | {c['landed']} | {c['reruns']} | "
              f"{c['identical']} | {c['leftover']} | {c['lock_refusals']} | {c['hung']} | "
              f"{c['failures']} |")
        total_failures += c["failures"]
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
