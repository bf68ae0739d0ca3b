"""compare_masters (the GPU check's CPU-against-GPU comparison of two parse_catalog results):
a result against itself agrees exactly; against a run with a category prior that forbids
classes for half of the images, it counts exactly the differing photo pixels and images that
h5py (with PyPI's hdf5plugin) finds, and fails (exit 3) below the share asked for; results of
different catalogs are refused (exit 1).
Usage: compare_masters.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import re
import subprocess

import numpy as np

import catalog_lib as lib


def compare(paths, a, b, *minimum):
    tool = os.path.join(paths.build, "compare_masters")
    return subprocess.run([tool, os.path.join(a, "master.h5"), os.path.join(b, "master.h5"),
                           *minimum], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def differing(a, b):
    """Photo pixels and images whose masks differ, from h5py."""
    pixels = images = 0
    for image in a:
        x, y = a[image]["masks"], b[image]["masks"]
        assert np.array_equal(x == 255, y == 255), f"{image}: padding differs"
        count = int(np.count_nonzero((x != y) & (x != 255)))
        pixels += count
        images += count > 0
    return pixels, images


def main():
    paths = lib.Paths()
    paths.require_fixture()
    work = paths.fresh("compare_masters")
    plain = os.path.join(work, "plain")
    lib.run(paths, lib.write_job(os.path.join(work, "plain.ini"), paths.photos, paths.checkpoint,
                                 plain), 0)
    same = compare(paths, plain, plain)
    assert same.returncode == 0 and "masks: 0 pixels differ" in same.stdout, same.stdout

    # a product type for half of the photos whose rule forbids the classes most predicted
    rows, _ = lib.read_results(os.path.join(plain, "master.h5"))
    ids = sorted(rows)
    csv = os.path.join(work, "types.csv")
    with open(csv, "w") as f:
        f.write("id,product_type\n" + "".join(f"{i},limited\n" for i in ids[::2]))
    fractions = np.sum([rows[i]["pixel_fraction"] for i in ids], axis=0)
    with lib.h5().File(os.path.join(plain, "master.h5"), "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["class_names"]]
    forbidden = [names[k] for k in np.argsort(fractions)[::-1][:3] if k != 0]
    table = os.path.join(work, "limited.prior")
    with open(table, "w") as f:
        f.write(f"limited : forbid {', '.join(forbidden)}\n")
    prior = os.path.join(work, "prior")
    lib.run(paths, lib.write_job(os.path.join(work, "prior.ini"), paths.photos, paths.checkpoint,
                                 prior, prior_table=table, prior_csv=csv), 0)
    pixels, images = differing(rows, lib.read_results(os.path.join(prior, "master.h5"))[0])
    assert pixels > 0, f"forbidding {forbidden} changed no pixel: the comparison proves nothing"
    strict = compare(paths, plain, prior)
    assert strict.returncode == 3 and "DISAGREE" in strict.stdout, strict.stdout
    found = re.search(r"masks: (\d+) pixels differ .* in (\d+) images", strict.stdout)
    assert found and (int(found[1]), int(found[2])) == (pixels, images), \
        f"h5py finds {pixels} pixels in {images} images:\n{strict.stdout}"
    share = float(re.search(r"equal share ([0-9.]+)", strict.stdout)[1])
    lenient = compare(paths, plain, prior, f"{share - 1e-6:.6f}")
    assert lenient.returncode == 0 and "agree" in lenient.stdout, lenient.stdout

    fewer = os.path.join(work, "fewer")
    lib.run(paths, lib.write_job(os.path.join(work, "fewer.ini"), paths.photos, paths.checkpoint,
                                 fewer, catalog_limit=len(ids) - 1), 0)
    refused = compare(paths, plain, fewer)
    assert refused.returncode == 1 and "masks of" in refused.stdout, refused.stdout
    print(f"compare_masters: identical results agree; forbidding {forbidden} for half the "
          f"photos: {pixels} pixels in {images} images, as h5py finds; other catalog refused")


if __name__ == "__main__":
    main()
