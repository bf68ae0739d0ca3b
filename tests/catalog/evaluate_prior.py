"""evaluate --prior-csv --prior-table: the report without the prior is exactly
the report of a run without those options, followed by the metrics with the
prior and each class's IoU without and with it. The options go in pairs, and a
table naming a class the model does not have is refused.
Usage: evaluate_prior.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import re
import subprocess

import catalog_lib as lib


def evaluate(paths, *extra):
    command = [os.path.join(paths.build, "evaluate"), "--checkpoint", paths.checkpoint, "--data",
               paths.dataset, "--split", "all", "--batch", "4", "--threads", "1", *extra]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=lib.mpi_env())


def without_progress(text):
    return [line for line in text.splitlines() if not line.startswith("[evaluate]")]


def main():
    paths = lib.Paths()
    paths.require_fixture()
    work = paths.fresh("evaluate_prior")
    h5py = lib.h5()
    with h5py.File(paths.dataset, "r") as f:
        ids = [i.decode() for i in f["ids"][()]]
    csv = os.path.join(work, "types.csv")
    with open(csv, "w") as f:
        f.write("id,product_type\n" + "".join(f"{i},no-pants\n" for i in ids[:-4]))
    table = os.path.join(work, "table.prior")
    with open(table, "w") as f:
        f.write("# every image listed in the CSV: no pants, no jeans\nno-pants : forbid pants, "
                "jeans\n")

    plain = evaluate(paths)
    assert plain.returncode == 0, plain.stdout
    with_prior = evaluate(paths, "--prior-csv", csv, "--prior-table", table)
    assert with_prior.returncode == 0, with_prior.stdout
    before = without_progress(plain.stdout)
    after = without_progress(with_prior.stdout)
    assert after[:len(before)] == before, "the report without the prior changed"
    extra = "\n".join(after[len(before):])
    assert re.search(rf"a rule for {len(ids) - 4} of {len(ids)} images", extra), extra
    for key in ("prior_pixel_accuracy", "prior_miou_excluding_background",
                "prior_miou_including_background", "prior_foreground_mask_iou"):
        assert re.search(rf"^{key} [0-9.]+", extra, re.M), f"{key} missing:\n{extra}"
    rows = dict((m.group(1), (float(m.group(2)), float(m.group(3)))) for m in
                re.finditer(r"^\s+\d+ (\S+)\s+([0-9.]+) ([0-9.]+)$", extra, re.M))
    assert "null" in rows and len(rows) > 5, extra
    print("per-class IoU without / with the prior:", {k: rows[k] for k in list(rows)[:6]})

    one = evaluate(paths, "--prior-csv", csv)
    assert one.returncode == 2 and "go together" in one.stdout, one.stdout
    bad_class = os.path.join(work, "bad.prior")
    with open(bad_class, "w") as f:
        f.write("skirt : forbid gown\n")
    refused = evaluate(paths, "--prior-csv", csv, "--prior-table", bad_class)
    assert refused.returncode == 1 and "bad.prior:1" in refused.stdout and "gown" in \
        refused.stdout, refused.stdout
    print("evaluate: unchanged report without the prior, metrics with it appended")


main()
