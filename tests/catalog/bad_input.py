"""(d) Bad input:
- a truncated JPEG, a file that is not a JPEG and a path that does not exist go
  to /failed with the reason and the run goes on (2 ranks);
- a checkpoint that does not fit the job (classes, size) or the HDF5 catalog
  (image size) is refused at start, before anything is written;
- an output directory that cannot be created ends the run with an error naming
  it, and nothing under a final name;
- a full disk (here: a file-size limit, ulimit -f) mid-run ends the run with an
  error; every file left under a final name is complete, and a rerun finishes
  the job with results equal to an undisturbed run.
Usage: bad_input.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import subprocess

import catalog_lib as lib

GOOD = 12


def expect_refusal(paths, what, job, ranks, needles, *overrides):
    result = lib.run(paths, job, ranks, *overrides, check=False)
    missing = [n for n in needles if n not in result.stdout]
    assert result.returncode != 0 and not missing, \
        f"{what}: exit {result.returncode}, missing {missing} in:\n{result.stdout}"
    print(f"ok   {what}: {[line for line in result.stdout.splitlines() if 'error' in line][:1]}")


def final_files(out):
    """Files under a final name (not .tmp) below out, except the lock and the manifest."""
    found = []
    for directory, _, names in os.walk(out):
        found += [os.path.join(directory, n) for n in names
                  if not n.endswith(".tmp") and n not in ("lock", "manifest")]
    return found


def main():
    paths = lib.Paths()
    paths.require_fixture()
    work = paths.fresh("bad_input")
    photos = paths.ccp_photos(GOOD)
    truncated = os.path.join(work, "truncated.jpg")
    with open(photos[3], "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[:len(data) * 2 // 5])
    not_jpeg = os.path.join(work, "notes.jpg")
    with open(not_jpeg, "w") as f:
        f.write("this is not a JPEG\n")
    missing = os.path.join(work, "missing.jpg")
    listing = os.path.join(work, "photos.txt")
    with open(listing, "w") as f:
        f.write("\n".join(photos[:5] + [truncated] + photos[5:9] + [not_jpeg, missing]
                          + photos[9:]) + "\n")

    out = os.path.join(work, "out")
    job = lib.write_job(os.path.join(work, "job.ini"), listing, paths.checkpoint, out, chunk=3)
    result = lib.run(paths, job, 2)
    rows, failed = lib.read_results(os.path.join(out, "master.h5"))
    assert len(rows) == GOOD, f"{len(rows)} rows"
    assert set(failed) == {"truncated", "notes", "missing"}, failed
    assert "truncated.jpg" in failed["truncated"][1] and "JPEG" in failed["truncated"][1]
    assert "notes.jpg" in failed["notes"][1]
    assert "missing.jpg" in failed["missing"][1] and "No such file" in failed["missing"][1]
    assert failed["truncated"][0] == lib.fnv1a64(data[:len(data) * 2 // 5])
    assert failed["missing"][0] == 0
    assert f"{GOOD} parsed, 3 failed" in result.stdout, result.stdout
    print(f"ok   bad images: {GOOD} parsed, /failed: " +
          "; ".join(f"{k}: {v[1]}" for k, v in sorted(failed.items())))

    refused_out = os.path.join(work, "refused")
    job = lib.write_job(os.path.join(work, "refused.ini"), listing, paths.checkpoint, refused_out)
    expect_refusal(paths, "checkpoint with other classes", job, 2,
                   [paths.checkpoint, "59 classes", "model.classes = 4"], "model.classes=4")
    expect_refusal(paths, "checkpoint of another size", job, 0,
                   [paths.checkpoint, "64x64", "model.height = 96"], "model.height=96")
    small = os.path.join(work, "ccp32.h5")
    subprocess.run([os.path.join(paths.build, "ingest"), "ccp", "--root", paths.ccp, "--limit",
                    "4", "--height", "32", "--width", "32", "--out", small], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    expect_refusal(paths, "catalog at another size", job, 0, [small, "32x32", "64x64"],
                   f"catalog.source={small}")
    expect_refusal(paths, "unknown job key", job, 0, ["model.clases"], "model.clases=4")
    assert not os.path.exists(refused_out), "a refused job created its output directory"

    blocker = os.path.join(work, "a_file")
    open(blocker, "w").close()
    expect_refusal(paths, "output directory that cannot be created", job, 2,
                   [os.path.join(blocker, "out"), "Not a directory"],
                   f"output.dir={os.path.join(blocker, 'out', 'run')}")

    full_out = os.path.join(work, "full")
    job = lib.write_job(os.path.join(work, "full.ini"), listing, paths.checkpoint, full_out,
                        chunk=3)
    h5py = lib.h5()
    # 16 kB stops the first part file (2 ranks); 64 kB lets the part files (3 images, about
    # 50 kB) through and stops the one shard file of all 15 (1 rank, about 75 kB) at the end.
    # The limit is set in each rank, after mpirun (whose own shared memory needs more).
    for kilobytes, ranks, stage in ((16, 2, "in the first part file"),
                                    (64, 1, "in the shard file")):
        command = lib.command(paths, job, ranks)
        at = command.index(paths.parse_catalog)
        command[at:] = ["bash", "-c", f"ulimit -f {kilobytes} && exec {' '.join(command[at:])}"]
        limited = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=lib.mpi_env(), timeout=240)
        assert limited.returncode == 1 and "File too large" in limited.stdout, limited.stdout
        assert "Segmentation" not in limited.stdout, limited.stdout
        assert not os.path.exists(os.path.join(full_out, "master.h5"))
        done = lib.manifest_done(full_out)
        kept = final_files(full_out)
        for path in kept:
            with h5py.File(path, "r") as f:  # complete: it opens and holds what it should
                chunk = int(os.path.basename(path)[len("chunk-"):-len(".h5")])
                assert chunk in done, f"{path} is not in the manifest"
                assert len(f["ids"]) + len(f["failed"]) == 3
        assert stage != "in the shard file" or len(kept) == 5, f"parts kept: {kept}"
        print(f"ok   disk full {stage}: exit 1, {len(kept)} complete parts kept, no master.h5")
    lib.run(paths, job, 2)
    resumed, resumed_failed = lib.read_results(os.path.join(full_out, "master.h5"))
    differences = lib.same_results(rows, resumed)
    assert not differences and resumed_failed == failed, differences
    print("ok   the rerun after the full disk completes, equal to the undisturbed run")


main()
