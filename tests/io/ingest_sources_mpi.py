"""ingest deepfashion2 and imaterialist under mpirun with 2 and 3 ranks write
files byte-identical to one process (items of varying garment counts, a bad
item recorded by --skip-bad, an image excluded by the label map); a bad item
on rank 1 without --skip-bad fails the run and leaves no file.
Usage: ingest_sources_mpi.py INGEST WRITE_JPEG PLUGIN_DIR WORK_DIR   (exit 77: no working mpirun)"""
import filecmp
import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402
import source_fixtures as s  # noqa: E402

INGEST, WRITE_JPEG, PLUGIN_DIR, WORK = sys.argv[1:5]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def mpirun(ranks, command):
    return t.run(["mpirun", "--oversubscribe", "-np", str(ranks), *command], env=ENV)


def compare_ranks(source, root, name, *extra):
    outputs = []
    for ranks in (1, 2, 3):
        out = os.path.join(WORK, f"mpi_{name}_{ranks}.h5")
        command = [INGEST, source, "--root", root, "--out", out, "--height", "64", "--width", "64",
                   "--skip-bad", *extra]
        result = t.run(command) if ranks == 1 else mpirun(ranks, command)
        assert result.returncode == 0, result.stderr
        outputs.append(out)
    for out in outputs[1:]:
        assert filecmp.cmp(outputs[0], out, shallow=False), f"{out} differs from 1 rank"
    return outputs[0]


def main():
    if not shutil.which("mpirun") or mpirun(2, ["true"]).returncode != 0:
        print("mpirun is missing or cannot start 2 ranks here")
        sys.exit(77)
    df2 = os.path.join(WORK, "mpi_deepfashion2")
    annotations = s.df2_annotations()
    annotations["000001x"] = '{"source": "user", "pair_id": 3, "item1": [}'
    sizes = dict(s.DF2_SIZES, **{"000001x": (20, 20)})
    s.write_deepfashion2(df2, WRITE_JPEG, annotations, sizes)
    out = compare_ranks("deepfashion2", df2, "df2")
    with t.open_h5(out, PLUGIN_DIR) as f:
        assert f["ids"].shape == (4,) and f["items"].shape == (11,) and f["skipped"].shape == (1,)

    imat = os.path.join(WORK, "mpi_imaterialist")
    s.write_imaterialist(imat, WRITE_JPEG)
    out = compare_ranks("imaterialist", imat, "imat9", "--labels", "imaterialist9")
    with t.open_h5(out, PLUGIN_DIR) as f:
        assert f["ids"].shape == (3,), "the jumpsuit image is excluded"

    out = os.path.join(WORK, "mpi_df2_fail.h5")
    result = mpirun(2, [INGEST, "deepfashion2", "--root", df2, "--out", out, "--height", "64",
                        "--width", "64"])
    assert result.returncode != 0 and "annos/000001x.json:1:" in result.stderr, result.stderr
    assert not os.path.exists(out) and not glob.glob(out + ".tmp*")
    print("1, 2 and 3 ranks give identical files")


main()
