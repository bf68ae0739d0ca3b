"""zstd interoperability with PyPI's hdf5plugin: h5py reads the file our
filter wrote, and our filter reads a file hdf5plugin wrote.
Usage: zstd_h5py.py TEST_ZSTD_BINARY OURS.h5 WORK_DIR   (exit 77: no hdf5plugin)"""
import os
import subprocess
import sys

import h5py
import numpy as np


def import_hdf5plugin():
    try:
        import hdf5plugin
        return hdf5plugin
    except ImportError:
        pass
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                              "--break-system-packages", "hdf5plugin"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    try:
        import hdf5plugin
        return hdf5plugin
    except ImportError:
        print("hdf5plugin not available and pip could not install it:",
              install.stdout.decode(errors="replace")[-400:])
        sys.exit(77)


def pattern():
    n, y, x = np.meshgrid(np.arange(4), np.arange(37), np.arange(23), indexing="ij")
    values = (31 * n + 7 * y + 3 * x) % 13
    values[(n + y + x) % 11 == 0] = 255
    return values.astype(np.uint8)


def main():
    test_zstd, ours, work = sys.argv[1:4]
    hdf5plugin = import_hdf5plugin()
    expected = pattern()
    with h5py.File(ours, "r") as f:
        masks = f["masks"]
        assert 32015 in [masks.id.get_create_plist().get_filter(i)[0]
                         for i in range(masks.id.get_create_plist().get_nfilters())]
        np.testing.assert_array_equal(masks[()], expected)
    theirs = os.path.join(work, "zstd_by_hdf5plugin.h5")
    with h5py.File(theirs, "w") as f:
        f.create_dataset("masks", data=expected, chunks=(1, 37, 23),
                         **hdf5plugin.Zstd(clevel=7))
    subprocess.run([test_zstd, "read", theirs], check=True)
    print("hdf5plugin", hdf5plugin.version, "reads ours and we read theirs")


main()
