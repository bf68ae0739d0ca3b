"""Shared helpers of the parse_catalog tests: the fixture's paths, job files,
running the command with and without mpirun, and reading results by image id.

Every test takes BUILD_DIR WORK_DIR; CCP_DIR names the CCP copy (default
../shared/data/ccp from the repository) and a test exits 77 when it has no
photos. fixture.py makes the checkpoint the others use."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP = 77
PHOTO_COUNT = 40  # JPEGs of the test catalog
INGEST_COUNT = 24  # photos in the ingested HDF5 catalog (and in the checkpoint's training set)

# Per-image datasets of the master file, compared between runs.
RESULT_FIELDS = ["content_hash", "source_size", "letterbox", "product_type", "pixel_fraction",
                 "bbox", "mean_confidence", "mean_rgb", "mean_lab", "colour", "masks"]


class Paths:
    def __init__(self):
        if len(sys.argv) < 3:
            sys.exit(f"usage: {sys.argv[0]} BUILD_DIR WORK_DIR")
        self.build = os.path.abspath(sys.argv[1])
        self.work = os.path.abspath(sys.argv[2])
        self.ccp = os.environ.get("CCP_DIR") or os.path.join(REPO, "..", "shared", "data", "ccp")
        self.parse_catalog = os.path.join(self.build, "parse_catalog")
        self.plugins = os.path.join(self.build, "plugins")
        fixture = os.path.join(self.work, "fixture")
        self.fixture = fixture
        self.dataset = os.path.join(fixture, "ccp64.h5")           # ingest --limit 24, 64x64
        self.checkpoint = os.path.join(fixture, "run", "last.h5")  # r18, 59 classes, 64x64
        self.photos = os.path.join(fixture, "photos")              # 40 symlinks to CCP photos
        self.photo_list = os.path.join(fixture, "photos.txt")      # the same 40, absolute paths

    def require_ccp(self):
        if not os.path.isdir(os.path.join(self.ccp, "photos")):
            print(f"CCP not found at '{self.ccp}' (set CCP_DIR): skipped")
            sys.exit(SKIP)

    def require_fixture(self):
        self.require_ccp()
        if not os.path.exists(self.checkpoint):
            sys.exit(f"FAIL: {self.checkpoint} is missing: run the catalog_fixture test first")

    def ccp_photos(self, count):
        names = sorted(n for n in os.listdir(os.path.join(self.ccp, "photos"))
                       if n.endswith(".jpg"))
        assert len(names) >= count, f"{self.ccp}/photos has {len(names)} photos, need {count}"
        return [os.path.join(self.ccp, "photos", n) for n in names[:count]]

    def fresh(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path


def write_job(path, source, checkpoint, out, chunk=4, batch=4, **extra):
    """A job file; extra keys as section_key=value (e.g. prior_table=...)."""
    sections = {"catalog": {"source": source},
                "model": {"checkpoint": checkpoint, "batch": batch, "threads": 1},
                "output": {"dir": out},
                "schedule": {"chunk": chunk, "progress_seconds": 0}}
    for key, value in extra.items():
        section, name = key.split("_", 1)
        sections.setdefault(section, {})[name] = value
    with open(path, "w") as f:
        for section, keys in sections.items():
            f.write(f"[{section}]\n")
            for key, value in keys.items():
                f.write(f"{key} = {value}\n")
    return path


def mpi_env():
    return dict(os.environ, OMP_NUM_THREADS="1")


def command(paths, job, ranks, *args):
    base = [paths.parse_catalog, job, *args]
    if ranks == 0:  # no mpirun: a singleton MPI process
        return base
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return ["mpirun", *root, "--oversubscribe", "-np", str(ranks), *base]


def run(paths, job, ranks=1, *args, check=True, timeout=240):
    result = subprocess.run(command(paths, job, ranks, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=mpi_env(), timeout=timeout)
    if check and result.returncode != 0:
        sys.exit(f"FAIL: parse_catalog {job} with {ranks} ranks exited {result.returncode}:\n"
                 f"{result.stdout}")
    return result


def start(paths, job, ranks, *args):
    """A run in the background, in its own process group (so the test can stop all of it)."""
    return subprocess.Popen(command(paths, job, ranks, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=mpi_env(),
                            start_new_session=True)


def session_pids(session):
    """Processes of a session (mpirun started with start_new_session leads one; its ranks
    stay in it, each in a process group of its own)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def stop_session(process, grace=20):
    """Waits for mpirun and every rank it started to end (ranks orphaned by a killed
    mpirun notice and stop by themselves); SIGKILLs what is left after `grace` seconds."""
    deadline = time.time() + grace
    while time.time() < deadline and (process.poll() is None or session_pids(process.pid)):
        time.sleep(0.05)
    for pid in session_pids(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def h5():
    """h5py as analysts have it: the zstd filter from PyPI's hdf5plugin, not our plugin."""
    os.environ.pop("HDF5_PLUGIN_PATH", None)
    import h5py
    import hdf5plugin  # noqa: F401  (registers filter 32015)
    return h5py


def read_results(master_path):
    """{id: {field: value}} of the master's rows and {id: (content_hash, reason)} of /failed."""
    h5py = h5()
    with h5py.File(master_path, "r") as f:
        ids = [i.decode() for i in f["ids"][()]]
        data = {name: f[name][()] for name in RESULT_FIELDS + ["reused", "catalog_index"]}
        failed = {r["id"].decode(): (int(r["content_hash"]), r["reason"].decode())
                  for r in f["failed"][()]}
    rows = {}
    for i, image in enumerate(ids):
        assert image not in rows, f"{master_path}: id {image} appears twice"
        rows[image] = {name: values[i] for name, values in data.items()}
    return rows, failed


def same_results(a, b, fields=RESULT_FIELDS):
    """The ids and fields where two results differ ([] when identical)."""
    differences = []
    for image in sorted(set(a) | set(b)):
        if image not in a or image not in b:
            differences.append((image, "missing"))
            continue
        for name in fields:
            x, y = a[image][name], b[image][name]
            equal = (np.array_equal(x, y, equal_nan=True) if np.asarray(x).dtype.kind == "f"
                     else np.array_equal(x, y))
            if not equal:
                differences.append((image, name))
    return differences


def manifest_done(out):
    """Chunks listed as done in OUT/manifest."""
    path = os.path.join(out, "manifest")
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {int(line.split()[1]) for line in f if line.startswith("done ")}


def wait_for(predicate, process, timeout=120):
    """Polls until predicate() holds; False if the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return predicate()
        time.sleep(0.002)
    raise TimeoutError("condition not reached")


def rank_pids(mpirun_pid):
    """{rank: pid} of the parse_catalog processes that mpirun started."""
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent != mpirun_pid or "parse_catalog" not in stat.split(")")[0]:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for variable in environment:
            if variable.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(variable.split(b"=")[1])] = int(entry)
    return ranks


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
