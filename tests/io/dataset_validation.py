"""dataset_open accepts a minimal file written by h5py (fixed-length
class_names, no /masks) and rejects broken ones with a message naming the file
and the field: missing dataset or attribute, wrong dtype, rank or shape, class
counts that disagree, split values out of range.
Usage: dataset_validation.py TEST_LOADER WORK_DIR"""
import os
import subprocess
import sys

import h5py
import numpy as np

TEST_LOADER, WORK = sys.argv[1:3]
N, H, W, K = 3, 32, 32, 4


def write(path, change=None):
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((N, H, W, 3), np.uint8)
        f["tags"] = np.zeros((N, K), np.uint8)
        f["ids"] = np.array([b"a", b"b", b"c"], "S64")
        f["source_size"] = np.full((N, 2), 32, np.int32)
        f["letterbox"] = np.zeros((N, 5), np.float32)
        f["split"] = np.array([0, 1, 2], np.uint8)
        f.attrs["class_names"] = np.array([b"bg", b"a", b"b", b"c"], "S10")
        for name, value in (("height", H), ("width", W), ("num_classes", K)):
            f.attrs[name] = np.int32(value)
        for name in ("label_map", "source", "tool_version"):
            f.attrs[name] = "test"
        if change:
            change(f)


def replace(name, value):
    def change(f):
        del f[name]
        f[name] = value
    return change


def add(name, value):
    def change(f):
        f[name] = value
    return change


def set_attribute(name, value):
    def change(f):
        f.attrs[name] = value
    return change


def main():
    good = os.path.join(WORK, "valid.h5")
    write(good)
    result = subprocess.run([TEST_LOADER, "--open", good], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0 and "3 images 32x32, 4 classes, masks 0" in result.stdout, \
        result.stdout
    cases = {
        "no_tags": (lambda f: f.__delitem__("tags"), "missing dataset /tags"),
        "float_images": (replace("images", np.zeros((N, H, W, 3), np.float32)),
                         "/images must hold uint8"),
        "rank": (replace("images", np.zeros((N, H, W), np.uint8)), "/images has rank 3"),
        "wrong_height": (set_attribute("height", np.int32(64)), "/images has 32 in dimension 1"),
        "tag_classes": (replace("tags", np.zeros((N, K + 1), np.uint8)),
                        "/tags has 5 classes but attribute num_classes is 4"),
        "class_names": (set_attribute("class_names", np.array([b"x", b"y"])),
                        "class_names has 2 names"),
        "no_width": (lambda f: f.attrs.__delitem__("width"), "missing root attribute width"),
        "split_value": (replace("split", np.array([0, 3, 1], np.uint8)), "/split[1] is 3"),
        "mask_shape": (add("masks", np.zeros((N, H, W + 1), np.uint8)),
                       "/masks has 33 in dimension 2"),
        "ids_length": (replace("ids", np.array([b"a"], "S64")), "/ids has 1 in dimension 0"),
    }
    for name, (change, message) in cases.items():
        path = os.path.join(WORK, f"invalid_{name}.h5")
        write(path, change)
        result = subprocess.run([TEST_LOADER, "--open", path], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert result.returncode != 0, f"{name}: accepted"
        assert path in result.stdout and message in result.stdout, (name, result.stdout)
        print("rejected:", result.stdout.strip().splitlines()[-1])


main()
