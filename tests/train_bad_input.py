"""Bad input to `train` and `evaluate` ends with a clear error naming the file and the field,
and a non-zero exit status.

usage: train_bad_input.py BUILD_DIR WORK_DIR     (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import os
import subprocess
import sys

failures = 0


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def expect_error(what, cmd, cwd, *needles):
    global failures
    result = run(cmd, cwd)
    message = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    missing = [n for n in needles if n not in result.stdout]
    if result.returncode == 0 or missing:
        failures += 1
        print(f"FAIL {what}: exit {result.returncode}, missing {missing} in:\n{result.stdout}")
    else:
        print(f"ok   {what}: exit {result.returncode}: {message}")


def label_outside_classes(build, source, out):
    """A copy of the 4-class dataset whose mask row 3 has label 9 at (10, 12): our zstd filter
    plugin lets h5py write /masks."""
    import shutil
    os.environ["HDF5_PLUGIN_PATH"] = os.path.join(build, "plugins")
    import h5py
    shutil.copyfile(source, out)
    with h5py.File(out, "r+") as f:
        mask = f["masks"][3]
        mask[10, 12] = 9
        f["masks"][3] = mask
    return out


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    ccp = os.environ.get("CCP_DIR", "")
    if not os.path.isdir(os.path.join(ccp, "photos")):
        print(f"CCP not found at '{ccp}' (set CCP_DIR): skipped")
        return 77
    os.makedirs(work, exist_ok=True)
    ingest, train, evaluate = (os.path.join(build, c) for c in ("ingest", "train", "evaluate"))
    data59 = os.path.join(work, "ccp59_64.h5")
    data4 = os.path.join(work, "ccp4_64.h5")
    for path, labels in ((data59, "ccp59"), (data4, "ccp4")):
        if not os.path.exists(path):
            result = run([ingest, "ccp", "--root", ccp, "--out", path, "--height", "64", "--width",
                          "64", "--labels", labels, "--limit", "24"], work)
            if result.returncode != 0:
                sys.exit(f"FAIL: ingest: {result.stdout}")

    job = os.path.join(work, "tiny.ini")
    with open(job, "w") as f:
        f.write(f"[data]\ndataset = {data59}\nlimit = 8\nval_limit = 4\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\n"
                "[train]\nbatch = 4\nepochs = 1\nthreads = 2\n"
                f"[checkpoint]\ndir = {work}/run\nresume = auto\n")
    result = run([train, job], work)
    if result.returncode != 0:
        sys.exit(f"FAIL: the reference run did not train:\n{result.stdout}")
    checkpoint = os.path.join(work, "run", "last.h5")

    bad_job = os.path.join(work, "bad_key.ini")
    with open(bad_job, "w") as f:
        f.write(open(job).read().replace("[train]\n", "[train]\nbach = 4\n"))
    expect_error("unknown key in a job file", [train, bad_job], work, "bad_key.ini", "bach")
    expect_error("unknown key on the command line", [train, job, "data.bogus=1"], work,
                 "data.bogus")
    expect_error("out-of-range value", [train, job, "train.batch=0"], work, "train.batch")
    expect_error("size not a multiple of 32", [train, job, "model.height=70"], work,
                 "model.height")
    expect_error("model size differs from the dataset", [train, job, "model.height=96"], work,
                 data59, "96")
    expect_error("checkpoint of another architecture", [train, job, "model.arch=r34",
                                                         "train.epochs=2"], work,
                 checkpoint, "arch")
    expect_error("checkpoint with another class count", [evaluate, "--checkpoint", checkpoint,
                                                        "--data", data4], work,
                 "classes")
    expect_error("missing checkpoint", [evaluate, "--checkpoint", checkpoint + ".none", "--data",
                                        data59], work, checkpoint + ".none")
    expect_error("missing dataset", [train, job, f"data.dataset={work}/none.h5"], work,
                 f"{work}/none.h5")
    bad_labels = label_outside_classes(build, data4, os.path.join(work, "label9.h5"))
    for what, command in (("training", [train, job, f"data.dataset={bad_labels}",
                                        f"checkpoint.dir={work}/run_label9", "data.limit=0"]),
                          ("validation", [train, job, f"data.dataset={data4}",
                                          f"data.val_dataset={bad_labels}",
                                          f"checkpoint.dir={work}/run_label9_val"])):
        expect_error(f"mask label outside the classes ({what})", command, work, bad_labels,
                     "/masks row 3", "label 9", "(row 10, column 12)", "4 classes")
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
