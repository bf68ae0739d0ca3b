"""ingest on bad input and bad command lines.
Each bad item alone (truncated JPEG, .mat without groundtruth, mask size !=
photo size, unknown class id): non-zero exit, the message names the file, no
output or temporary file is left. --skip-bad: the good items are written and
the bad ones recorded in /skipped with their reasons. Usage errors exit 2.
Usage: ingest_bad.py INGEST MAKE_FIXTURE PLUGIN_DIR WORK_DIR"""
import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402

INGEST, MAKE_FIXTURE, PLUGIN_DIR, WORK = sys.argv[1:5]
GOOD = ["0001", "0002", "0003"]
BAD = {"0004": ("photos/0004.jpg", "Premature end of JPEG file"),
       "0005": ("pixel-level/0005.mat", "no variable 'groundtruth'"),
       "0006": ("pixel-level/0006.mat", "groundtruth is 35x47 but the photo"),
       "0007": ("pixel-level/0007.mat", "class id 9 is not in label map")}


def subset_root(full, ids, name):
    """A CCP root holding only `ids` (symbolic links into `full`)."""
    root = os.path.join(WORK, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "photos"))
    os.makedirs(os.path.join(root, "annotations", "pixel-level"))
    os.symlink(os.path.join(full, "label_list.mat"), os.path.join(root, "label_list.mat"))
    for i in ids:
        for part in (f"photos/{i}.jpg", f"annotations/pixel-level/{i}.mat"):
            os.symlink(os.path.join(full, part), os.path.join(root, part))
    return root


def no_output_left(out):
    left = [p for p in [out] + glob.glob(out + ".tmp*") if os.path.exists(p)]
    assert not left, f"left behind: {left}"


def ingest(root, out, *extra):
    return t.run([INGEST, "ccp", "--root", root, "--out", out, "--height", "32",
                  "--width", "32", *extra])


def check_each_bad_item(full):
    for bad_id, (file_part, message) in BAD.items():
        root = subset_root(full, GOOD + [bad_id], f"bad_{bad_id}")
        out = os.path.join(WORK, f"bad_{bad_id}.h5")
        result = ingest(root, out)
        assert result.returncode != 0, f"{bad_id}: exit 0"
        assert file_part in result.stderr and message in result.stderr, result.stderr
        no_output_left(out)
        print("expected failure:", result.stderr.strip().splitlines()[-1])


def check_truncated_mat(full):
    """A .mat cut short (libmatio alone reads it without complaint and hands back part of the
    mask) is an error naming the file, at any cut."""
    source = os.path.join(full, "annotations", "pixel-level", GOOD[-1] + ".mat")
    data = open(source, "rb").read()
    for fraction in (0.1, 0.5, 0.75, 0.99):
        root = subset_root(full, GOOD, "truncated_mat")
        target = os.path.join(root, "annotations", "pixel-level", GOOD[-1] + ".mat")
        os.remove(target)
        with open(target, "wb") as f:
            f.write(data[:int(len(data) * fraction)])
        out = os.path.join(WORK, "truncated_mat.h5")
        result = ingest(root, out)
        assert result.returncode != 0, f"a .mat cut to {fraction:.0%}: exit 0"
        assert GOOD[-1] + ".mat: truncated" in result.stderr, result.stderr
        no_output_left(out)
    print("expected failure:", result.stderr.strip().splitlines()[-1])


def check_skip_bad(full):
    out = os.path.join(WORK, "skip_bad.h5")
    result = ingest(full, out, "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert "3 annotated images" in result.stdout and "4 skipped" in result.stdout, result.stdout
    with t.open_h5(out, PLUGIN_DIR) as f:
        assert [s.decode() for s in f["ids"][()]] == GOOD
        skipped = f["skipped"][()]
        assert [s.decode() for s in skipped["id"]] == list(BAD)
        for row, (file_part, message) in zip(skipped, BAD.values()):
            reason = row["reason"].decode()
            assert file_part in reason and message in reason, reason


def check_usage_errors(full):
    out = os.path.join(WORK, "usage.h5")
    result = t.run([INGEST, "--help"])
    assert result.returncode == 0 and "usage: ingest ccp" in result.stdout
    cases = [
        (["ccp", "--root", full, "--out", out, "--bogus"], "unknown option '--bogus'"),
        (["ccp", "--root", full, "--out"], "option --out needs a value"),
        (["ccp", "--root", full, "--out", out, "--height", "abc"], "'abc' is not an integer"),
        (["ccp", "--root", full, "--out", out, "--height", "100"], "multiples of 32"),
        (["ccp", "--root", full, "--out", out, "--limit", "-1"], "out of range"),
        (["ccp", "--out", out], "--root and --out are required"),
        (["pascal", "--root", full, "--out", out], "unknown source 'pascal'"),
        (["ccp", "--root", full, "--out", out, "--val-fraction", "0.6", "--test-fraction", "0.5"],
         "below 1"),
        ([], "the first argument names the source"),
    ]
    for args, message in cases:
        result = t.run([INGEST, *args])
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert message in result.stderr and "usage:" in result.stderr, (args, result.stderr)
    result = t.run([INGEST, "ccp", "--root", full, "--out", out, "--labels", "no_such_map"])
    assert result.returncode != 0 and "no_such_map.map" in result.stderr, result.stderr
    result = t.run([INGEST, "ccp", "--root", os.path.join(WORK, "nowhere"), "--out", out])
    assert result.returncode != 0 and "nowhere/photos" in result.stderr, result.stderr
    no_output_left(out)
    # a missing label_list.mat is "no such file", not "cannot open as a .mat file"
    root = subset_root(full, GOOD, "no_label_list")
    os.remove(os.path.join(root, "label_list.mat"))
    result = ingest(root, out)
    assert result.returncode != 0 and "label_list.mat: cannot open: No such file or directory" \
        in result.stderr, result.stderr
    no_output_left(out)


def main():
    full = os.path.join(WORK, "bad_ccp")
    shutil.rmtree(full, ignore_errors=True)
    assert t.run([MAKE_FIXTURE, full, "bad"]).returncode == 0
    check_each_bad_item(full)
    check_truncated_mat(full)
    check_skip_bad(full)
    check_usage_errors(full)
    print("bad input handled")


main()
