"""(e) Nightly mode across two runs of a changing catalog.

Night 1: ids n01..n20 (symlinks to CCP photos) and bad.jpg (not a JPEG).
Night 2: n01..n16 as before, except that the product-type CSV now says n05 is a
dress; n17 and n18 point at other photos; n19 and n20 are gone; n21..n24 are
new; bad.jpg is as before. So against night 1: new 4, changed 3, unchanged 16,
removed 2. The 15 unchanged rows are copied (the unchanged failure is tried
again), and night 2's master equals a run of the same catalog from scratch. A night 2 run
whose options differ from night 1's (another zstd level) reuses nothing but
counts the same.
Usage: nightly.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import re

import catalog_lib as lib

TYPES = ["skirt", "dress", "pants", "jeans", "shorts"]


def make_night(work, name, targets, bad, types):
    directory = os.path.join(work, name)
    os.makedirs(directory)
    for image, photo in targets.items():
        os.symlink(photo, os.path.join(directory, image + ".jpg"))
    os.symlink(bad, os.path.join(directory, "bad.jpg"))
    csv = os.path.join(work, name + ".csv")
    with open(csv, "w") as f:
        f.write("id,product_type\n" + "".join(f"{i},{t}\n" for i, t in sorted(types.items())))
    return directory, csv


def night(paths, work, name, directory, csv, previous="", ranks=2, **extra):
    out = os.path.join(work, "out_" + name)
    table = os.path.join(lib.REPO, "jobs", "category_prior", "ccp59.prior")
    job = lib.write_job(os.path.join(work, name + ".ini"), directory, paths.checkpoint, out,
                        chunk=5, prior_table=table, prior_csv=csv, nightly_previous=previous,
                        **extra)
    result = lib.run(paths, job, ranks)
    h5py = lib.h5()
    with h5py.File(os.path.join(out, "master.h5"), "r") as f:
        counts = {k: int(f.attrs[k]) for k in ("new", "changed", "unchanged", "removed", "reused",
                                              "images", "failed")}
    rows, failed = lib.read_results(os.path.join(out, "master.h5"))
    return out, result.stdout, counts, rows, failed


def main():
    paths = lib.Paths()
    paths.require_fixture()
    work = paths.fresh("nightly")
    photos = paths.ccp_photos(lib.PHOTO_COUNT)
    bad = os.path.join(work, "bad_photo.jpg")
    with open(bad, "w") as f:
        f.write("not a JPEG\n")
    first = {f"n{i + 1:02d}": photos[i] for i in range(20)}
    types1 = {image: TYPES[i % len(TYPES)] for i, image in enumerate(sorted(first))}
    second = {image: photo for image, photo in first.items() if image not in ("n19", "n20")}
    second["n17"], second["n18"] = photos[30], photos[31]
    for i in range(21, 25):
        second[f"n{i}"] = photos[i - 1]
    types2 = {image: TYPES[i % len(TYPES)] for i, image in enumerate(sorted(second))}
    types2.update({image: types1[image] for image in first if image in second})
    assert types1["n05"] != "dress"
    types2["n05"] = "dress"
    dir1, csv1 = make_night(work, "night1", first, bad, types1)
    dir2, csv2 = make_night(work, "night2", second, bad, types2)

    out1, _, counts1, rows1, failed1 = night(paths, work, "night1", dir1, csv1)
    assert counts1 == {"new": 21, "changed": 0, "unchanged": 0, "removed": 0, "reused": 0,
                       "images": 20, "failed": 1}, counts1
    _, log, counts2, rows2, failed2 = night(paths, work, "night2", dir2, csv2, previous=out1)
    expected = {"new": 4, "changed": 3, "unchanged": 16, "removed": 2, "reused": 15,
                "images": 22, "failed": 1}
    assert counts2 == expected, counts2
    assert re.search(r"new 4, changed 3, unchanged 16, removed 2; 15 results reused", log), log
    assert "reusing the previous run's results" in log, log

    unchanged = [i for i in first if i in second and i not in ("n05", "n17", "n18")]
    assert sorted(i for i in rows2 if rows2[i]["reused"]) == sorted(unchanged)
    assert not lib.same_results({i: rows1[i] for i in unchanged},
                                {i: rows2[i] for i in unchanged})
    assert failed2["bad"][0] == failed1["bad"][0] and "night2/bad.jpg" in failed2["bad"][1]
    for image in ("n05", "n17", "n18", "n21"):
        assert not rows2[image]["reused"]
    assert rows2["n05"]["product_type"] == b"dress" and rows1["n05"]["product_type"] != b"dress"
    assert rows2["n17"]["content_hash"] != rows1["n17"]["content_hash"]

    _, _, counts_fresh, rows_fresh, failed_fresh = night(paths, work, "night2_fresh", dir2, csv2,
                                                        ranks=0)
    differences = lib.same_results(rows_fresh, rows2, lib.RESULT_FIELDS + ["catalog_index"])
    assert not differences and failed_fresh == failed2, differences
    assert counts_fresh["new"] == 23 and counts_fresh["reused"] == 0

    _, log, counts_other, _, _ = night(paths, work, "night2_other_options", dir2, csv2,
                                       previous=out1, output_zstd_level=5)
    assert "recomputing everything" in log, log
    assert counts_other == dict(expected, reused=0), counts_other
    print("night 2 against night 1: new 4, changed 3, unchanged 16 (copied, equal to a fresh "
          "run), removed 2")


main()
