"""(b) kill -9 mid-run, then rerun: the result is complete, has every image
once, and equals an uninterrupted run. The catalog: 120 ids, three symlinks to
each of the 40 test photos, one chunk per image, so that the kills land between
and inside chunks well before the end:
  run 1: 3 ranks, kill -9 of rank 1 once 4 chunks are in the manifest;
  run 2: 2 ranks, kill -9 of rank 0 (the one handing out chunks and writing the
         manifest) once 6 more are;
  run 3: 3 ranks, kill -9 of the whole job (mpirun and every rank at once, as a
         batch system ends a job) once 4 more are;
  run 4: 3 ranks to the end, then run 5 finds nothing to do.
Usage: kill.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import re
import signal
import time

import catalog_lib as lib

IMAGES = 3 * lib.PHOTO_COUNT


def killed_run(paths, job, out, ranks, target, after):
    """Starts a run, waits until `after` more chunks are done, kills `target`
    (a rank number, or 'job': mpirun and all its ranks) with SIGKILL; returns False if the
    run ended first."""
    before = len(lib.manifest_done(out))
    process = lib.start(paths, job, ranks)
    try:
        reached = lib.wait_for(lambda: len(lib.manifest_done(out)) >= before + after, process)
        if not reached or process.poll() is not None:
            return False
        if target == "job":
            for pid in lib.session_pids(process.pid):
                os.kill(pid, signal.SIGKILL)
        else:
            pids = lib.rank_pids(process.pid)
            assert target in pids, f"rank {target} not found among {pids}"
            os.kill(pids[target], signal.SIGKILL)
    finally:
        lib.stop_session(process)
    assert process.returncode != 0, "a killed run reported success"
    assert not os.path.exists(os.path.join(out, "master.h5")), "master.h5 after a killed run"
    return True


def main():
    paths = lib.Paths()
    paths.require_fixture()
    work = paths.fresh("kill")
    photos = os.path.join(work, "photos")
    os.makedirs(photos)
    for copy in range(IMAGES // lib.PHOTO_COUNT):
        for i, photo in enumerate(paths.ccp_photos(lib.PHOTO_COUNT)):
            os.symlink(photo, os.path.join(photos, f"k{copy}_{i:02d}.jpg"))
    reference_out = os.path.join(work, "reference")
    job = lib.write_job(os.path.join(work, "reference.ini"), photos, paths.checkpoint,
                        reference_out, chunk=1)
    lib.run(paths, job, 0)
    reference, _ = lib.read_results(os.path.join(reference_out, "master.h5"))

    for attempt in range(3):
        out = os.path.join(work, f"out{attempt}")
        job = lib.write_job(os.path.join(work, "job.ini"), photos, paths.checkpoint, out,
                            chunk=1)
        if (killed_run(paths, job, out, 3, 1, 4) and killed_run(paths, job, out, 2, 0, 6)
                and killed_run(paths, job, out, 3, "job", 4)):
            break
        print(f"attempt {attempt}: a run ended before its kill (manifest: "
              f"{len(lib.manifest_done(out))} chunks); trying again")
    else:
        raise AssertionError("the runs always ended before they could be killed")
    done_before = len(lib.manifest_done(out))
    print(f"after three kills: {done_before} of {IMAGES} chunks in the manifest")
    assert done_before < IMAGES

    result = lib.run(paths, job, 3)
    assert re.search(rf"resuming .*: {done_before} of {IMAGES} chunks done before, "
                     rf"{IMAGES - done_before} to do", result.stdout), result.stdout
    rows, failed = lib.read_results(os.path.join(out, "master.h5"))
    assert not failed and len(rows) == IMAGES, (len(rows), failed)
    differences = lib.same_results(reference, rows)
    assert not differences, f"the resumed run differs from the uninterrupted one: {differences}"
    assert sorted(int(rows[i]["catalog_index"]) for i in rows) == list(range(IMAGES))
    with open(os.path.join(out, "manifest")) as f:
        done_lines = [line for line in f if line.startswith("done ")]
    assert len(done_lines) == IMAGES, f"{len(done_lines)} done lines: a chunk twice?"
    leftovers = [n for d in ("parts", "shards") for n in os.listdir(os.path.join(out, d))
                 if n.endswith(".tmp")] + os.listdir(os.path.join(out, "parts"))
    assert not leftovers, f"left behind: {leftovers}"

    again = lib.run(paths, job, 2)
    assert "complete already: nothing to do" in again.stdout, again.stdout
    print(f"resumed run: all {len(rows)} images once, identical to the uninterrupted run")


main()
