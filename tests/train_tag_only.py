"""The Extended U-Net's class branch also learns from CCP's tag-only photos (image-level tags,
no mask), given as data.tags_dataset: they join the training epochs with their tags as the
class targets and no pixel or box loss; misuse is refused with a clear error.

Ingests the first 24 annotated and 24 tag-only CCP photos at 64x64 (4-class map) and trains an
injected ResNet18 U-Net for 2 epochs with and without the tag-only file; checks the images and
steps per epoch `train` reports against the files' train splits (read with h5py), that every
loss term in steps.csv is finite, and the refusals. (Which targets a tag-only image gets is
tests/test_branch_targets.c's and its loading tests/io/test_loader.c's business.)

usage: train_tag_only.py BUILD_DIR WORK_DIR     (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import csv
import math
import os
import re
import subprocess
import sys

BATCH = 4


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def train_split_count(path):
    import h5py
    with h5py.File(path, "r") as f:
        return int((f["split"][:] == 0).sum())


def train(train_bin, job, work, name, *overrides):
    run_dir = os.path.join(work, name)
    result = run([train_bin, job, f"checkpoint.dir={run_dir}", *overrides], work)
    if result.returncode != 0:
        sys.exit(f"FAIL: {name} did not train:\n{result.stdout}")
    with open(os.path.join(run_dir, "steps.csv")) as f:
        rows = list(csv.DictReader(f))
    return result.stdout, rows


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    ccp = os.environ.get("CCP_DIR", "")
    if not os.path.isdir(os.path.join(ccp, "photos")):
        print(f"CCP not found at '{ccp}' (set CCP_DIR): skipped")
        return 77
    os.makedirs(work, exist_ok=True)
    ingest, train_bin = os.path.join(build, "ingest"), os.path.join(build, "train")
    data = os.path.join(work, "ccp4_64.h5")
    tags = os.path.join(work, "ccp4_64_tags.h5")
    if not os.path.exists(tags):
        result = run([ingest, "ccp", "--root", ccp, "--out", data, "--height", "64", "--width",
                      "64", "--labels", "ccp4", "--limit", "24"], work)
        if result.returncode != 0:
            sys.exit(f"FAIL: ingest: {result.stdout}")
    annotated, tag_only = train_split_count(data), train_split_count(tags)
    job = os.path.join(work, "extended.ini")
    with open(job, "w") as f:
        f.write(f"[data]\ndataset = {data}\nval_limit = 4\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\nbranches = injected\n"
                f"[train]\nbatch = {BATCH}\nepochs = 2\nthreads = 2\n"
                "[checkpoint]\nresume = no\n")

    failures = 0
    plain_log, plain_rows = train(train_bin, job, work, "annotated_only")
    log, rows = train(train_bin, job, work, "with_tags", f"data.tags_dataset={tags}")
    reported = re.search(r"train: (\d+) training images, (\d+) of them tag-only", log)
    steps = [int(re.search(r"(\d+) steps/epoch", text).group(1)) for text in (plain_log, log)]
    want = [annotated // BATCH, (annotated + tag_only) // BATCH]
    if not reported or (int(reported.group(1)), int(reported.group(2))) != (
            annotated + tag_only, tag_only) or steps != want:
        failures += 1
        print(f"FAIL: reported {reported and reported.group(0)}, steps/epoch {steps}; expected "
              f"{annotated + tag_only} images ({tag_only} tag-only), steps/epoch {want}")
    if len(rows) != 2 * want[1] or len(plain_rows) != 2 * want[0]:
        failures += 1
        print(f"FAIL: steps.csv has {len(rows)} and {len(plain_rows)} steps")
    terms = ("loss", "segmentation_loss", "class_loss", "box_loss")
    bad = [r for r in rows if not all(math.isfinite(float(r[t])) for t in terms)]
    if bad:
        failures += 1
        print(f"FAIL: non-finite loss terms in steps {[r['step'] for r in bad]}")
    print(f"annotated {annotated}, tag-only {tag_only} training images; steps/epoch {steps}; "
          f"last class loss {float(rows[-1]['class_loss']):.4f} with tags, "
          f"{float(plain_rows[-1]['class_loss']):.4f} without")

    for what, overrides, needles in (
            ("tag-only file without branches", [f"data.tags_dataset={tags}", "model.branches=none"],
             ("data.tags_dataset needs model.branches",)),
            ("an annotated file as the tag-only one", [f"data.tags_dataset={data}"],
             (data, "has /masks")),
            ("another ignore label", [f"data.tags_dataset={tags}", "data.ignore_label=0"],
             ("data.ignore_label = 255",))):
        result = run([train_bin, job, f"checkpoint.dir={work}/refused", *overrides], work)
        missing = [n for n in needles if n not in result.stdout]
        if result.returncode == 0 or missing:
            failures += 1
            print(f"FAIL {what}: exit {result.returncode}, missing {missing} in:\n{result.stdout}")
        else:
            print(f"ok   {what}: {result.stdout.strip().splitlines()[-1]}")
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
