"""(a) The result does not depend on the rank count or the scheduling: 40 CCP
JPEGs parsed by 1 rank (no mpirun), 3 ranks (dynamic) and 2 ranks (static)
give the same masks and statistics for every image id, in the same master rows;
so does the ingested HDF5 catalog with 1 and 2 ranks.
Usage: ranks.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import re

import catalog_lib as lib


def parse(paths, name, source, ranks, **extra):
    work = paths.fresh(name)
    out = os.path.join(work, "out")
    job = lib.write_job(os.path.join(work, "job.ini"), source, paths.checkpoint, out, **extra)
    result = lib.run(paths, job, ranks)
    shards = sorted(os.listdir(os.path.join(out, "shards")))
    assert len(shards) == max(ranks, 1), f"{name}: shards {shards} for {ranks} ranks"
    assert not os.listdir(os.path.join(out, "parts")), f"{name}: parts left after the run"
    rows, failed = lib.read_results(os.path.join(out, "master.h5"))
    h5py = lib.h5()
    with h5py.File(os.path.join(out, "master.h5"), "r") as f:
        order = [i.decode() for i in f["ids"][()]]
    return result.stdout, rows, failed, order


def main():
    paths = lib.Paths()
    paths.require_fixture()
    runs = {}
    for name, ranks, mode in (("one_rank", 0, "dynamic"), ("three_ranks", 3, "dynamic"),
                              ("two_ranks_static", 2, "static")):
        runs[name] = parse(paths, f"ranks_{name}", paths.photos, ranks, schedule_mode=mode)
    log, reference, failed, order = runs["one_rank"]
    assert len(reference) == lib.PHOTO_COUNT and not failed, (len(reference), failed)
    expected_order = sorted(os.path.splitext(n)[0] for n in os.listdir(paths.photos))
    assert order == expected_order, "master rows are not in catalog order"
    for name in ("three_ranks", "two_ranks_static"):
        log, rows, failed, rank_order = runs[name]
        differences = lib.same_results(reference, rows, lib.RESULT_FIELDS + ["catalog_index"])
        assert not differences, f"{name} differs from one rank: {differences[:10]}"
        assert rank_order == order and not failed
        assert re.search(r"^\s+all\s+10\s+40\s+40\s", log, re.M), f"{name}: summary:\n{log}"
        print(f"{name}: identical to one rank for all {len(rows)} images")

    _, hdf5_one, _, _ = parse(paths, "ranks_hdf5_one", paths.dataset, 0)
    _, hdf5_two, _, _ = parse(paths, "ranks_hdf5_two", paths.dataset, 2)
    assert len(hdf5_one) == lib.INGEST_COUNT
    differences = lib.same_results(hdf5_one, hdf5_two)
    assert not differences, f"HDF5 catalog, 2 ranks differ from 1: {differences[:10]}"
    print(f"HDF5 catalog: 2 ranks identical to 1 rank for all {len(hdf5_one)} images")


main()
