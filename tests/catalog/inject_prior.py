"""prior.inject: ground-truth injection from the category prior. Trains an Extended U-Net
checkpoint (branches injected into decoder block 0) on the fixture's dataset, then parses the
fixture's photos with a prior whose CSV gives half of them a product type, with and without
prior.inject: images without a rule get identical results (their injected vector is the branch's
own output either way), and the images with a rule get other confidences (the rule's allowed
classes, 0/1, replace the branch's probabilities). prior.inject without a prior, and with a
checkpoint whose branches are not injected, is refused.
Usage: inject_prior.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import os
import subprocess
import sys

import catalog_lib as lib


def main():
    paths = lib.Paths()
    paths.require_fixture()
    work = paths.fresh("inject_prior")
    run_dir = os.path.join(work, "run")
    train_job = os.path.join(work, "train.ini")
    with open(train_job, "w") as f:
        f.write(f"[data]\ndataset = {paths.dataset}\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\nbranches = injected\n"
                "[train]\nbatch = 4\nepochs = 1\nthreads = 1\n"
                f"[checkpoint]\ndir = {run_dir}\nresume = no\n")
    trained = subprocess.run([os.path.join(paths.build, "train"), train_job], cwd=work,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=lib.mpi_env())
    assert trained.returncode == 0, trained.stdout
    checkpoint = os.path.join(run_dir, "last.h5")

    ids = sorted(os.path.splitext(n)[0] for n in os.listdir(paths.photos))
    with_rule = set(ids[::2])
    csv = os.path.join(work, "types.csv")
    with open(csv, "w") as f:
        f.write("id,product_type\n" + "".join(f"{i},skirt\n" for i in sorted(with_rule)))
    table = os.path.join(lib.REPO, "jobs", "category_prior", "ccp59.prior")

    results = {}
    for inject in ("false", "true"):
        out = os.path.join(work, "out_" + inject)
        job = lib.write_job(os.path.join(work, f"parse_{inject}.ini"), paths.photos, checkpoint,
                            out, prior_table=table, prior_csv=csv, prior_inject=inject)
        lib.run(paths, job, 2)
        results[inject], _ = lib.read_results(os.path.join(out, "master.h5"))
    plain, injected = results["false"], results["true"]
    without_rule = {i: plain[i] for i in plain if i not in with_rule}
    unchanged = lib.same_results(without_rule, {i: injected[i] for i in without_rule})
    assert not unchanged, f"images without a rule changed with prior.inject: {unchanged[:5]}"
    changed = [i for i in with_rule
               if lib.same_results({i: plain[i]}, {i: injected[i]}, ["mean_confidence"])]
    assert changed, "prior.inject changed no image with a rule: the injection did nothing"
    print(f"prior.inject: {len(without_rule)} images without a rule identical, "
          f"{len(changed)} of {len(with_rule)} with a rule changed")

    refused = lib.run(paths, lib.write_job(os.path.join(work, "no_prior.ini"), paths.photos,
                                           checkpoint, os.path.join(work, "out_none"),
                                           prior_inject="true"), 0, check=False)
    assert refused.returncode != 0 and "prior.inject needs a category prior" in refused.stdout, \
        refused.stdout
    refused = lib.run(paths, lib.write_job(os.path.join(work, "plain.ini"), paths.photos,
                                           paths.checkpoint, os.path.join(work, "out_plain"),
                                           prior_table=table, prior_csv=csv, prior_inject="true"),
                      0, check=False)
    assert refused.returncode != 0 and "'branches'" in refused.stdout, refused.stdout
    assert not os.path.exists(os.path.join(work, "out_plain", "master.h5"))
    print("inject_prior: ok")


main()
