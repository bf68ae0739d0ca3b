"""evaluate's confusion matrix and per-class scores against its own --confusion files.

Ingests 24 CCP photos at 64x64 twice (the 4-class and the 59-class label maps), trains a tiny
ResNet18 U-Net on each, then runs `evaluate --split all --batch 5` (24 images: the last batch is
partial, its padding must not count) with --confusion OUT.csv and with --confusion OUT.h5 and
checks, with numpy and h5py:
  - the CSV and the HDF5 file hold the same class names, counts and percentages;
  - the counts sum to the labelled pixels of the dataset's masks (not 255) and to the printed
    labelled_pixels; row_percent / column_percent are the counts over their row / column sums,
    each row (column) of a class with pixels sums to 100, the others are NaN (empty in the CSV);
  - the printed pixel_accuracy is trace/total and the printed mIoU (excluding and including
    background, with its class count), foreground mask IoU, per-class IoU, precision, recall,
    F1 and F2 are those recomputed from the file's counts;
  - with 4 classes the printed row % and column % tables equal the file's; with 59 only a note
    naming the file is printed;
  - the lines printed before are unchanged and first (a run without --confusion prints the same
    report without the confusion_file line);
  - a name not ending in .csv or .h5 is refused (exit 2), an unwritable directory too (exit 1),
    before any work, and no .tmp file is left behind.

usage: evaluate_metrics.py BUILD_DIR WORK_DIR     (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import csv
import math
import os
import re
import subprocess
import sys

import numpy as np

FAILURES = []
OLD_KEYS = ("pixel_accuracy", "miou_excluding_background", "miou_including_background",
            "foreground_mask_iou")


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL:", message, flush=True)
    return condition


def run(cmd, cwd, expect=0):
    result = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    if expect is not None and result.returncode != expect:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {result.returncode}, not {expect}:\n"
                 f"{result.stdout}")
    return result


def import_h5py(build):
    """h5py able to read /masks (zstd): hdf5plugin from PyPI, else our filter plugin."""
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        os.environ["HDF5_PLUGIN_PATH"] = os.path.join(build, "plugins")
    import h5py
    return h5py


def read_csv(path):
    """{block title: (column names, row names, K x K float array; NaN for empty cells)}."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    blocks, current = {}, None
    for row in rows:
        if not row:
            current = None
            continue
        if current is None:
            current = row[0]
            blocks[current] = (row[1:], [], [])
            continue
        blocks[current][1].append(row[0])
        blocks[current][2].append([float(x) if x != "" else math.nan for x in row[1:]])
    return {title: (header, names, np.array(values, dtype=np.float64))
            for title, (header, names, values) in blocks.items()}


def printed_value(text, key):
    match = re.search(rf"^{key} (\S+)", text, re.M)
    check(match, f"no '{key}' line in:\n{text}")
    return float(match.group(1)) if match else math.nan


def close4(printed, exact, what):
    """A value printed with %.4f against the exact value."""
    check(abs(printed - exact) <= 5e-5 + 1e-9, f"{what}: printed {printed}, from counts {exact}")


def section(lines, title_prefix):
    """The lines after the one starting with title_prefix, up to the next unindented line."""
    start = next((i for i, line in enumerate(lines) if line.startswith(title_prefix)), None)
    if start is None:
        return None
    body = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        body.append(line)
    return body


def check_report(text, counts, names, labelled, images, classes):
    """The printed report against counts (the file's)."""
    lines = [line for line in text.splitlines() if not line.startswith("[evaluate]")]
    k = len(names)
    total = counts.sum()
    truth, predicted, tp = counts.sum(axis=1), counts.sum(axis=0), np.diag(counts)
    check(total == labelled, f"counts sum to {total}, the masks have {labelled} labelled pixels")
    check(printed_value(text, "labelled_pixels") == total, "labelled_pixels != counts.sum()")
    check(re.search(rf"^checkpoint .* split all, {images} images$", text, re.M),
          f"the report does not say {images} images")

    close4(printed_value(text, "pixel_accuracy"), tp.sum() / total, "pixel_accuracy")
    union = truth + predicted - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    foreground = present.copy()
    foreground[0] = False
    close4(printed_value(text, "miou_excluding_background"), iou[foreground].mean(),
           "miou_excluding_background")
    close4(printed_value(text, "miou_including_background"), iou[present].mean(),
           "miou_including_background")
    match = re.search(r"^miou_excluding_background \S+ \((\d+) classes\)", text, re.M)
    check(match and int(match.group(1)) == foreground.sum(), "miou class count")
    fg_both = counts[1:, 1:].sum()
    close4(printed_value(text, "foreground_mask_iou"),
           fg_both / (counts[1:, :].sum() + counts[:, 1:].sum() - fg_both), "foreground_mask_iou")

    # The old lines come first, in their old order, then the new ones.
    order = [next((i for i, line in enumerate(lines) if line.startswith(key)), -1)
             for key in OLD_KEYS + ("per-class IoU:", "labelled_pixels",
                                    "per-class pixel precision")]
    check(-1 not in order and order == sorted(order), f"line order {order}")

    iou_rows = section(lines, "per-class IoU:")
    printed_iou = {int(line.split()[0]): float(line.split()[2]) for line in iou_rows}
    check(sorted(printed_iou) == list(np.flatnonzero(present)), "per-class IoU classes")
    for c, value in printed_iou.items():
        close4(value, iou[c], f"IoU of {names[c]}")

    score_rows = section(lines, "per-class pixel precision")
    check(score_rows and score_rows[0].split()[:2] == ["k", "class"], "score header")
    seen = []
    for line in score_rows[1:]:
        fields = line.split()
        c = int(fields[0])
        seen.append(c)
        check(fields[1] == names[c], f"class name {fields[1]} != {names[c]}")
        p, r, f1, f2 = fields[2:6]
        check(int(fields[6]) == truth[c] and int(fields[7]) == predicted[c],
              f"{names[c]}: truth/predicted pixels {fields[6:8]} != {truth[c]}, {predicted[c]}")
        if predicted[c]:
            close4(float(p), tp[c] / predicted[c], f"precision of {names[c]}")
        else:
            check(p == "-", f"precision of {names[c]} with nothing predicted: {p}")
        if truth[c]:
            close4(float(r), tp[c] / truth[c], f"recall of {names[c]}")
        else:
            check(r == "-", f"recall of {names[c]} absent from the truth: {r}")
        close4(float(f1), 2 * tp[c] / (truth[c] + predicted[c]), f"F1 of {names[c]}")
        close4(float(f2), 5 * tp[c] / (4 * truth[c] + predicted[c]), f"F2 of {names[c]}")
        if truth[c] and predicted[c] and tp[c]:
            P, R = tp[c] / predicted[c], tp[c] / truth[c]
            close4(float(f1), 2 * P * R / (P + R), f"F1 of {names[c]} as 2PR/(P+R)")
    check(seen == list(np.flatnonzero(present)), "score rows: the classes with pixels")

    row_tab = section(lines, "confusion_row_percent")
    column_tab = section(lines, "confusion_column_percent")
    if k <= 12:
        for title, table, divisor in (("row", row_tab, truth[:, None]),
                                      ("column", column_tab, predicted[None, :])):
            if not check(table and len(table) == k + 1, f"{title} % table missing"):
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                expected = 100.0 * counts / divisor
            for i, line in enumerate(table[1:]):
                fields = line.split()
                check(int(fields[0]) == i and fields[1] == names[i], f"{title} table row {i}")
                for j, cell in enumerate(fields[2:]):
                    if math.isnan(expected[i, j]):
                        check(cell == "-", f"{title} %[{i},{j}] undefined but printed {cell}")
                    else:
                        check(abs(float(cell) - expected[i, j]) <= 0.005 + 1e-9,
                              f"{title} %[{i},{j}] printed {cell}, from counts "
                              f"{expected[i, j]}")
    else:
        check(row_tab is None and column_tab is None, f"{k} classes: tables printed")
        check(re.search(rf"^confusion matrices not printed \({k} classes, more than 12\): .* are "
                        r"in \S+$", text, re.M), "the note naming the file")


def check_files(h5py, csv_path, h5_path, names_expected, images):
    """The two files against each other and against themselves; returns the counts."""
    with h5py.File(h5_path, "r") as f:
        counts = f["counts"][()]
        row, column = f["row_percent"][()], f["column_percent"][()]
        names = list(f["class_names"].asstr()[()])
        check(counts.dtype == np.int64 and row.dtype == np.float64 and
              column.dtype == np.float64, "HDF5 dtypes")
        check(f.attrs["images"] == images and f.attrs["split"] == "all" and
              f.attrs["ignore_label"] == 255, f"HDF5 attributes {dict(f.attrs)}")
    k = len(names_expected)
    check(names == names_expected, f"/class_names {names} != the dataset's")
    check(counts.shape == (k, k) and row.shape == (k, k) and column.shape == (k, k), "shapes")

    blocks = read_csv(csv_path)
    check(list(blocks) == ["counts", "row_percent", "column_percent"], f"CSV blocks {list(blocks)}")
    for title, (header, row_names, values) in blocks.items():
        check(header == names and row_names == names, f"CSV {title}: class names")
    check(np.array_equal(blocks["counts"][2], counts), "CSV counts != HDF5 counts")
    for title, matrix in (("row_percent", row), ("column_percent", column)):
        values = blocks[title][2]
        check(np.array_equal(np.isnan(values), np.isnan(matrix)), f"{title}: NaN cells differ")
        both = ~np.isnan(matrix)
        check(np.abs(values[both] - matrix[both]).max() <= 5e-7 + 1e-12,
              f"{title}: CSV and HDF5 differ beyond the CSV's 6 decimals")

    truth, predicted = counts.sum(axis=1), counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        check(np.allclose(row, 100.0 * counts / truth[:, None], rtol=1e-12, atol=1e-12,
                          equal_nan=True), "row_percent != counts / row sums")
        check(np.allclose(column, 100.0 * counts / predicted[None, :], rtol=1e-12, atol=1e-12,
                          equal_nan=True), "column_percent != counts / column sums")
    check(np.allclose(row[truth > 0].sum(axis=1), 100.0, atol=1e-9), "row % rows != 100")
    check(np.isnan(row[truth == 0]).all(), "rows of classes absent from the truth are not NaN")
    check(np.allclose(column[:, predicted > 0].sum(axis=0), 100.0, atol=1e-9),
          "column % columns != 100")
    check(np.isnan(column[:, predicted == 0]).all(), "columns never predicted are not NaN")
    csv_row = blocks["row_percent"][2]
    check(np.allclose(csv_row[truth > 0].sum(axis=1), 100.0, atol=k * 5e-7 + 1e-9),
          "CSV row % rows != 100")
    return counts


def ccp_or_skip():
    """The CCP copy ($CCP_DIR), or None after saying the test is skipped."""
    ccp = os.environ.get("CCP_DIR", "")
    if not os.path.isdir(os.path.join(ccp, "photos")):
        print(f"CCP not found at '{ccp}' (set CCP_DIR): skipped")
        return None
    return ccp


def tiny_ccp(build, ccp, work, labels):
    """WORK/<labels>_64.h5: the first 24 CCP photos at 64x64 (ingested once)."""
    data = os.path.join(work, f"{labels}_64.h5")
    if not os.path.exists(data):
        run([os.path.join(build, "ingest"), "ccp", "--root", ccp, "--out", data, "--height", "64",
             "--width", "64", "--labels", labels, "--limit", "24"], work)
    return data


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    ccp = ccp_or_skip()
    if ccp is None:
        return 77
    os.makedirs(work, exist_ok=True)
    h5py = import_h5py(build)
    train, evaluate = (os.path.join(build, c) for c in ("train", "evaluate"))

    for labels, epochs in (("ccp4", 3), ("ccp59", 1)):
        data = tiny_ccp(build, ccp, work, labels)
        run_dir = os.path.join(work, f"run_{labels}")
        job = os.path.join(work, f"{labels}.ini")
        with open(job, "w") as f:
            f.write(f"[data]\ndataset = {data}\nlimit = 16\nval_limit = 4\n"
                    "[model]\narch = r18\nheight = 64\nwidth = 64\nprecision = fp32\n"
                    f"[train]\nbatch = 4\nepochs = {epochs}\nthreads = 2\n"
                    f"[checkpoint]\ndir = {run_dir}\nresume = no\n")
        run([train, job], work)
        checkpoint = os.path.join(run_dir, "last.h5")

        with h5py.File(data, "r") as f:
            masks = f["masks"][()]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["class_names"]]
        images, labelled = masks.shape[0], int((masks != 255).sum())

        base = [evaluate, "--checkpoint", checkpoint, "--data", data, "--split", "all",
                "--batch", "5", "--threads", "2", "--precision", "fp32"]
        out = os.path.join(work, f"out_{labels}")
        os.makedirs(out, exist_ok=True)
        csv_path, h5_path = os.path.join(out, "confusion.csv"), os.path.join(out, "confusion.h5")
        for path in (csv_path, h5_path):
            if os.path.exists(path):
                os.remove(path)
        with_csv = run(base + ["--confusion", csv_path], work).stdout
        with_h5 = run(base + ["--confusion", h5_path], work).stdout
        plain = run(base, work).stdout
        print(with_csv)

        def report(text):
            varying = ("[evaluate]", "confusion_file ", "confusion matrices ")
            return [line for line in text.splitlines() if not line.startswith(varying)]
        check(report(with_csv) == report(with_h5) == report(plain),
              f"{labels}: the report depends on --confusion")
        check(f"confusion_file {csv_path}\n" in with_csv and
              f"confusion_file {h5_path}\n" in with_h5, "confusion_file lines")
        check(sorted(os.listdir(out)) == ["confusion.csv", "confusion.h5"],
              f"{labels}: files left in {out}: {os.listdir(out)}")

        check(len(names) == (4 if labels == "ccp4" else 59), f"{labels}: {len(names)} classes")
        counts = check_files(h5py, csv_path, h5_path, names, images)
        check_report(with_csv, counts, names, labelled, images, len(names))
        print(f"{labels}: {len(names)} classes, {images} images, {counts.sum()} labelled pixels, "
              f"pixel accuracy {np.trace(counts) / counts.sum():.4f}: files and report agree",
              flush=True)

    bad = run(base + ["--confusion", os.path.join(out, "confusion.txt")], work, expect=None)
    check(bad.returncode == 2 and "must end with .csv or .h5" in bad.stdout,
          f"a .txt name: exit {bad.returncode}:\n{bad.stdout}")
    missing = os.path.join(work, "no_such_directory", "confusion.csv")
    bad = run(base + ["--confusion", missing], work, expect=None)
    check(bad.returncode == 1 and "no_such_directory" in bad.stdout and
          "[evaluate]" not in bad.stdout,
          f"an unwritable directory: exit {bad.returncode}:\n{bad.stdout}")

    print("evaluate_metrics: " + ("FAIL" if FAILURES else "confusion files and report agree"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
