"""h5dump reads our zstd masks through the plugin library (and cannot without it).
Usage: zstd_h5dump.py PLUGIN_DIR OURS.h5 EMPTY_DIR   (exit 77: no h5dump)"""
import os
import re
import shutil
import subprocess
import sys


def h5dump(path, plugin_dir):
    env = dict(os.environ, HDF5_PLUGIN_PATH=plugin_dir)
    return subprocess.run(["h5dump", "-d", "/masks", "-y", "-w", "0", path], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def main():
    plugin_dir, ours, empty_dir = sys.argv[1:4]
    if not shutil.which("h5dump"):
        print("h5dump not installed (Debian package hdf5-tools)")
        sys.exit(77)
    result = h5dump(ours, plugin_dir)
    text = result.stdout.decode(errors="replace")
    assert result.returncode == 0, text[-2000:]
    data = text[text.index("DATA {") + len("DATA {"):text.rindex("}")]
    values = [int(v) for v in re.findall(r"\d+", data)]
    expected = [255 if (n + y + x) % 11 == 0 else (31 * n + 7 * y + 3 * x) % 13
                for n in range(4) for y in range(37) for x in range(23)]
    assert values == expected, "h5dump printed different values"
    os.makedirs(empty_dir, exist_ok=True)
    without = h5dump(ours, empty_dir)
    assert without.returncode != 0, "h5dump read the masks without the plugin?"
    print("h5dump decoded", len(values), "values through", plugin_dir)


main()
