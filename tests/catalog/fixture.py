"""The fixture of the parse_catalog tests: a tiny checkpoint (ingest 24 CCP
photos at 64x64, train a ResNet18 U-Net for 1 epoch, 1 thread), a directory of
40 symlinks to CCP photos and a list file naming the same photos.
Usage: fixture.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import subprocess
import sys

import catalog_lib as lib


def main():
    paths = lib.Paths()
    paths.require_ccp()
    fixture = paths.fresh("fixture")
    env = lib.mpi_env()

    def run(cmd):
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=fixture, timeout=300)
        if result.returncode != 0:
            sys.exit(f"FAIL: {' '.join(cmd)}:\n{result.stdout}")

    run([os.path.join(paths.build, "ingest"), "ccp", "--root", paths.ccp, "--limit",
         str(lib.INGEST_COUNT), "--height", "64", "--width", "64", "--out", paths.dataset])
    job = os.path.join(fixture, "train.ini")
    with open(job, "w") as f:
        f.write(f"[data]\ndataset = {paths.dataset}\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\n"
                "[train]\nbatch = 4\nepochs = 1\nthreads = 1\n"
                f"[checkpoint]\ndir = {os.path.dirname(paths.checkpoint)}\nresume = no\n")
    run([os.path.join(paths.build, "train"), job])
    os.makedirs(paths.photos)
    photos = paths.ccp_photos(lib.PHOTO_COUNT)
    for photo in photos:
        os.symlink(photo, os.path.join(paths.photos, os.path.basename(photo)))
    with open(paths.photo_list, "w") as f:
        f.write("# the test catalog\n" + "".join(p + "\n" for p in photos))
    print(f"fixture: {paths.checkpoint}, {len(photos)} photos")


main()
