"""ingest under mpirun with 2 and 3 ranks writes files byte-identical to the
single-process run (annotated, tag-only, and with --skip-bad the /skipped list).
Usage: ingest_mpi.py INGEST MAKE_FIXTURE WORK_DIR   (exit 77: no working mpirun)"""
import filecmp
import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402

INGEST, MAKE_FIXTURE, WORK = sys.argv[1:4]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def mpirun(ranks, command):
    return t.run(["mpirun", "--oversubscribe", "-np", str(ranks), *command], env=ENV)


def main():
    if not shutil.which("mpirun") or mpirun(2, ["true"]).returncode != 0:
        print("mpirun is missing or cannot start 2 ranks here")
        sys.exit(77)
    for kind in ("good", "bad"):
        root = os.path.join(WORK, f"mpi_{kind}")
        shutil.rmtree(root, ignore_errors=True)
        assert t.run([MAKE_FIXTURE, root, kind]).returncode == 0
        outputs = []
        for ranks in (1, 2, 3):
            out = os.path.join(WORK, f"mpi_{kind}_{ranks}.h5")
            command = [INGEST, "ccp", "--root", root, "--out", out, "--height", "64",
                       "--width", "64", "--skip-bad"]
            result = t.run(command) if ranks == 1 else mpirun(ranks, command)
            assert result.returncode == 0, result.stderr
            outputs.append(out)
        for out in outputs[1:]:
            assert filecmp.cmp(outputs[0], out, shallow=False), f"{out} differs from 1 rank"
            tags_out = out.replace(".h5", "_tags.h5")
            if os.path.exists(outputs[0].replace(".h5", "_tags.h5")):
                assert filecmp.cmp(outputs[0].replace(".h5", "_tags.h5"), tags_out,
                                   shallow=False), f"{tags_out} differs from 1 rank"
    # A bad item on rank 1 without --skip-bad still fails the whole run, leaving no file.
    out = os.path.join(WORK, "mpi_fail.h5")
    result = mpirun(2, [INGEST, "ccp", "--root", os.path.join(WORK, "mpi_bad"), "--out", out,
                        "--height", "64", "--width", "64"])
    assert result.returncode != 0 and "photos/0004.jpg" in result.stderr, result.stderr
    assert not os.path.exists(out) and not glob.glob(out + ".tmp*")
    print("1, 2 and 3 ranks give identical files")


main()
