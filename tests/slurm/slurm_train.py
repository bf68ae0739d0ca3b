"""slurm/train.sh on a real one-node Slurm cluster brought up on localhost for the test:
munged (its own key and socket), slurmctld and slurmd as child processes, configured in a
temporary directory. Then, with 2 CPU tasks:
  1. a tiny training job runs to completion (state COMPLETED, exit 0, last.h5 written);
  2. a longer one gets USR1 mid-run (scancel --batch --signal=USR1, as --signal=B:USR1@120 does
     before the time limit): train checkpoints and exits 75, the script requeues the job, and the
     requeued run resumes from last.h5 and completes.
Everything is torn down at the end, on failure too.

usage: slurm_train.py BUILD_DIR REPO_DIR    (exit 77: Slurm cannot start on this machine)
"""
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
DAEMON_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


class Skip(Exception):
    pass


class Failure(Exception):
    pass


def die_with_parent():
    """Daemons get SIGTERM if this test is killed (e.g. a ctest timeout) before its teardown."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({e})"


class Cluster:
    def __init__(self, root):
        self.root = root
        self.daemons = []
        self.conf = os.path.join(root, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def start_daemon(self, name, args, log):
        command = [shutil.which(name, path=DAEMON_PATH)] + args
        out = open(os.path.join(self.root, log), "w")
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                   preexec_fn=die_with_parent)
        self.daemons.append((name, process, os.path.join(self.root, log)))
        return process

    def check_daemons(self, what):
        for name, process, log in self.daemons:
            if process.poll() is not None:
                raise Skip(f"{name} exited with status {process.returncode} while {what}; "
                           f"its log:\n{tail(log)}")

    def start(self):
        os.chmod(self.root, 0o755)  # munged wants every directory above its socket searchable
        key = os.path.join(self.root, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        munge_socket = os.path.join(self.root, "munge.socket")
        self.start_daemon("munged", ["--foreground", f"--socket={munge_socket}",
                                     f"--key-file={key}",
                                     f"--pid-file={self.root}/munged.pid",
                                     f"--log-file={self.root}/munged.log",
                                     f"--seed-file={self.root}/munged.seed"], "munged.out")
        deadline = time.monotonic() + 20
        while not os.path.exists(munge_socket):
            self.check_daemons("starting")
            if time.monotonic() > deadline:
                raise Skip(f"munged made no socket in 20 s:\n{tail(self.root + '/munged.out')}")
            time.sleep(0.2)

        user = pwd.getpwuid(os.getuid()).pw_name
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(self.root, sub))
        # cred_expire: a requeued job may start again only once its credentials expire
        # (default 120 s); 10 s keeps the test short.
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=fptest
SlurmctldHost=localhost
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire=10
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=10
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        self.start_daemon("slurmctld", ["-D", "-f", self.conf], "slurmctld.log")
        self.start_daemon("slurmd", ["-D", "-f", self.conf, "-N", "localhost"], "slurmd.log")
        deadline = time.monotonic() + 60
        state = ""
        while state != "idle":
            self.check_daemons("waiting for the node")
            if time.monotonic() > deadline:
                raise Skip(f"node localhost not idle after 60 s (state '{state}'); slurmctld:\n"
                           f"{tail(self.root + '/slurmctld.log')}\nslurmd:\n"
                           f"{tail(self.root + '/slurmd.log')}")
            time.sleep(0.5)
            result = self.run(["sinfo", "-h", "-N", "-n", "localhost", "-o", "%T"], check=False)
            state = result.stdout.strip()
        print(f"slurm up in {self.root}: node localhost idle")

    def run(self, command, check=True):
        result = subprocess.run(command, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if check and result.returncode != 0:
            raise Failure(f"{' '.join(command)} exited {result.returncode}: {result.stdout}")
        return result

    def job_field(self, job, field):
        shown = self.run(["scontrol", "-o", "show", "job", str(job)]).stdout
        match = re.search(rf"\b{field}=(\S*)", shown)
        if not match:
            raise Failure(f"no {field} in: {shown}")
        return match.group(1)

    def stop(self):
        if any(process.poll() is None for name, process, _ in self.daemons if name == "slurmctld"):
            self.run(["scancel", "-u", pwd.getpwuid(os.getuid()).pw_name], check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and \
                    self.run(["squeue", "-h"], check=False).stdout.strip():
                time.sleep(0.5)
        for _, process, _ in reversed(self.daemons):
            if process.poll() is None:
                process.terminate()
        for _, process, _ in self.daemons:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(description, predicate, seconds, cluster, output):
    deadline = time.monotonic() + seconds
    while not predicate():
        cluster.check_daemons(f"waiting for {description}")
        if time.monotonic() > deadline:
            raise Failure(f"no {description} after {seconds} s; job output so far:\n"
                          f"{tail(output, 60)}")
        time.sleep(0.5)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def submit(cluster, repo, job_file, output, *overrides):
    # The script asks for GPUs; this cluster has none, so the test submits 2 CPU tasks instead.
    command = ["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1",
               "--gpus-per-task=0", "--time=15", f"--output={output}",
               os.path.join(repo, "slurm", "train.sh"), job_file, *overrides]
    job = cluster.run(command).stdout.strip().split(";")[0]
    print(f"submitted job {job}: {' '.join(command)}")
    return job


def finished(cluster, job):
    return cluster.job_field(job, "JobState") not in ("PENDING", "RUNNING", "CONFIGURING",
                                                      "COMPLETING", "REQUEUED")


def expect_completed(cluster, job, output):
    state, exit_code = cluster.job_field(job, "JobState"), cluster.job_field(job, "ExitCode")
    if state != "COMPLETED" or exit_code != "0:0":
        raise Failure(f"job {job} ended {state} with exit code {exit_code}; output:\n"
                      f"{read(output)}")


def make_dataset(build, work):
    fixture = os.path.join(work, "fixture")
    dataset = os.path.join(work, "tiny_64.h5")
    for command in ([os.path.join(build, "tests", "io", "make_ccp_fixture"), fixture, "good"],
                    [os.path.join(build, "ingest"), "ccp", "--root", fixture, "--out", dataset,
                     "--height", "64", "--width", "64"]):
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        if result.returncode != 0:
            raise Failure(f"{' '.join(command)}: {result.stdout}")
    return dataset


def write_job(work, name, dataset, epochs):
    path = os.path.join(work, f"{name}.ini")
    with open(path, "w") as f:
        f.write(f"[data]\ndataset = {dataset}\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\n"
                f"[train]\nbatch = 2\nepochs = {epochs}\nthreads = 1\nlog_every = 1\n"
                f"[checkpoint]\ndir = {work}/{name}\nresume = auto\n")
    return path


def run_to_completion(cluster, repo, work, dataset):
    job_file = write_job(work, "complete", dataset, epochs=2)
    output = os.path.join(work, "complete.out")
    job = submit(cluster, repo, job_file, output)
    wait_for(f"end of job {job}", lambda: finished(cluster, job), 300, cluster, output)
    expect_completed(cluster, job, output)
    if "train exited with status 0" not in read(output):
        raise Failure(f"train.sh did not report train's exit 0:\n{read(output)}")
    if not os.path.exists(os.path.join(work, "complete", "last.h5")):
        raise Failure(f"job {job} completed without writing last.h5:\n{read(output)}")
    print(f"ok   job {job} completed, exit 0, last.h5 written")


def run_with_preemption(cluster, repo, work, dataset):
    # an epoch is one step and takes about a second here; the signal goes out at the first
    # progress line and stops the run at the end of epoch 1 or 2, so 16 leave ample room
    job_file = write_job(work, "preempt", dataset, epochs=16)
    output = os.path.join(work, "preempt.out")
    job = submit(cluster, repo, job_file, output)
    wait_for(f"training progress of job {job}", lambda: "[train]" in read(output), 300, cluster,
             output)
    cluster.run(["scancel", "--batch", "--signal=USR1", job])
    print(f"sent USR1 to the batch script of job {job}")
    wait_for(f"requeue of job {job}", lambda: "requeueing job" in read(output), 120, cluster,
             output)
    wait_for(f"end of job {job}", lambda: finished(cluster, job), 600, cluster, output)
    text = read(output)
    expect_completed(cluster, job, output)
    restarts = int(cluster.job_field(job, "Restarts"))
    resumed = re.search(r"resumed from \S*last\.h5: step (\d+)", text)
    if restarts < 1 or "(exit 75)" not in text or not resumed or int(resumed.group(1)) < 1:
        raise Failure(f"job {job}: {restarts} restarts; expected train's exit 75, a requeue and "
                      f"a run resumed from last.h5 at step >= 1; output:\n{text}")
    # Progress lines (train.log_every = 1) read "[train] SEEN/TOTAL img" for the images of the
    # run so far: each run must advance one step per line, and the resumed run's total must be
    # exactly what the first run had left, so no step is repeated or skipped across the stop.
    runs = []
    for run_text in text.split(resumed.group(0)):
        progress = [(int(m.group(1)), int(m.group(2)))
                    for m in re.finditer(r"^\[train\] (\d+)/(\d+) img", run_text, re.M)]
        if not progress or [seen for seen, _ in progress] != \
                [progress[0][0] * (line + 1) for line in range(len(progress))]:
            raise Failure(f"job {job}: progress {progress} does not advance one step a line; "
                          f"output:\n{text}")
        runs.append(progress)
    seen_before_stop, total = runs[0][-1][0], runs[0][0][1]
    if runs[1][-1] != (runs[1][0][1], runs[1][0][1]) or seen_before_stop + runs[1][0][1] != total:
        raise Failure(f"job {job}: stopped after {seen_before_stop} of {total} images but the "
                      f"resumed run went {runs[1][0]} .. {runs[1][-1]}; output:\n{text}")
    print(f"ok   job {job}: USR1, exit 75, requeued ({restarts} restart), resumed at step "
          f"{resumed.group(1)} after {seen_before_stop} of {total} images, completed the other "
          f"{total - seen_before_stop}")


def main():
    build, repo = (os.path.abspath(p) for p in sys.argv[1:3])
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=DAEMON_PATH)]
    if missing:
        print(f"SKIP: Slurm cannot start here: {' '.join(missing)} not installed (Debian "
              "packages slurmctld slurmd slurm-client munge; cmake/bootstrap.sh installs them)")
        return 77
    root = tempfile.mkdtemp(prefix="fp_slurm_")
    cluster = Cluster(root)
    try:
        cluster.start()
        work = os.path.join(root, "work")
        os.makedirs(work)
        cluster.env["FP_TRAIN"] = os.path.join(build, "train")
        dataset = make_dataset(build, work)
        run_to_completion(cluster, repo, work, dataset)
        run_with_preemption(cluster, repo, work, dataset)
        return 0
    except Skip as e:
        print(f"SKIP: Slurm cannot start here: {e}")
        return 77
    except Failure as e:
        print(f"FAIL: {e}")
        print(f"slurmctld log:\n{tail(root + '/slurmctld.log')}\nslurmd log:\n"
              f"{tail(root + '/slurmd.log')}")
        return 1
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
