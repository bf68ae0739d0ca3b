"""evaluate on an Extended U-Net checkpoint against the PyTorch twin.

Ingests 24 CCP photos at 64x64 (4 classes), trains a ResNet18 U-Net with injected branches for
a few epochs, runs `evaluate --split all --batch 5 --ground-truth-injection` (the last batch is
partial: its padding must count nowhere), then loads the checkpoint into the twin
(tests/twin/twin_model.py, float64, eval mode) and recomputes from the dataset's photos and masks:
  - the class branch's decisions (probability >= 0.5; truth = the classes in the mask) and from
    them every printed per-class support, precision, recall, F1, F2, accuracy and the
    exact-match ratio, label accuracy and micro scores (decisions whose twin probability is
    within 1e-3 of 0.5 are reported and allowed to differ);
  - the box branch's mean IoU with the mask's boxes (per class and overall, 1e-3);
  - the segmentation metrics with the mask's class presence injected (gt_*; 2e-3, since argmax
    ties at float32 rounding may flip a few pixels) and without it (equal to the plain report's);
  - the injection matters: the gt_ mIoU differs from the plain one by more than that 2e-3, or
    the comparison with the twin could not tell it was applied. The planes go into the deepest
    and the full-size decoder block (inject_blocks 0,4). How far a briefly trained model's
    predictions follow them depends on where training got to, which differs between machines
    (the full-size block's 20 of 52 input channels moved the mIoU by 7e-3 and 8e-3 on an
    AVX-512 Zen 4, by 5e-4 on an AVX2-only Zen 3), so evaluate and the twin both read a copy of
    the checkpoint whose presence planes' weights in that block are scaled by PRESENCE_GAIN:
    the truth then moves predictions whatever the training reached (on that Zen 3: gain 10,
    4.4e-2 with clothes' IoU still 0.49; gain 3, 7.7e-3; gain 20, 0.14 with nearly every pixel
    background, a prediction too degenerate to compare much).
Also: --ground-truth-injection on a plain checkpoint is refused naming the attribute.

usage: evaluate_branches.py BUILD_DIR WORK_DIR     (CCP_DIR: the CCP copy; exit 77 if absent)
"""
import os
import re
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "twin"))
import branches_twin  # noqa: E402
import twin_model  # noqa: E402
from evaluate_metrics import (FAILURES, ccp_or_skip, check, import_h5py,  # noqa: E402
                              printed_value, run, section, tiny_ccp)

GT_MIOU_TOLERANCE = 2e-3  # argmax ties at float32 rounding may flip a few pixels
PRESENCE_GAIN = 10.0


def twin_outputs(h5py, checkpoint, data, classes):
    """(class probabilities, boxes, segmentation predictions with the truth injected, masks)."""
    import torch
    with h5py.File(checkpoint, "r") as f:
        state = {name: torch.from_numpy(f["params"][name][()]) for name in f["params"]}
        state.update({name: torch.from_numpy(f["buffers"][name][()]) for name in f["buffers"]})
        blocks = int(f.attrs["inject_blocks"])
    model = twin_model.build_model("r18", classes, 1, "injected",
                                  tuple(b for b in range(5) if blocks >> b & 1))
    missing = model.load_state_dict(state, strict=False)
    check(not missing.unexpected_keys and all(k.endswith("num_batches_tracked")
                                              for k in missing.missing_keys),
          f"checkpoint tensors do not fit the twin: {missing}")
    model.double().eval()
    with h5py.File(data, "r") as f:
        photos, masks = f["images"][()], f["masks"][()]
    x = torch.from_numpy(photos).double().permute(0, 3, 1, 2) / 255.0
    x = (x - torch.tensor(twin_model.IMAGENET_MEAN, dtype=torch.float64)[:, None, None]) / \
        torch.tensor(twin_model.IMAGENET_STD, dtype=torch.float64)[:, None, None]
    presence, _ = branches_twin.branch_targets(torch.from_numpy(masks), classes)
    with torch.no_grad():
        _, class_logits, box_logits = model(x)
        injected_logits = model(x, presence=presence)[0]
    return (torch.sigmoid(class_logits).numpy(), torch.sigmoid(box_logits).numpy(),
            injected_logits.argmax(dim=1).numpy(), masks)


def amplify_presence(h5py, checkpoint, out):
    """A copy of checkpoint whose full-size decoder block (4) weighs the class-presence planes,
    the first K of its 5K injected input channels (the last ones), PRESENCE_GAIN times more."""
    shutil.copyfile(checkpoint, out)
    with h5py.File(out, "r+") as f:
        classes = int(f.attrs["classes"])
        weight = f["params"]["decoder.blocks.4.conv1.0.weight"]
        first = weight.shape[1] - 5 * classes
        values = weight[()]
        values[:, first:first + classes] *= PRESENCE_GAIN
        weight[...] = values
    return out


def box_iou(a, b):
    height, width = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = height * width if height > 0 and width > 0 else 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def miou_excluding_background(masks, predictions, classes):
    truth, predicted = masks.ravel(), predictions.ravel()
    labelled = truth != 255
    counts = np.bincount(truth[labelled].astype(np.int64) * classes + predicted[labelled],
                         minlength=classes * classes).reshape(classes, classes)
    tp = np.diag(counts)
    union = counts.sum(0) + counts.sum(1) - tp
    return np.mean([tp[k] / union[k] for k in range(1, classes) if union[k] > 0])


def check_branches(text, probabilities, boxes, masks, classes, names):
    import torch
    presence, true_boxes = (t.numpy() for t in branches_twin.branch_targets(torch.from_numpy(masks),
                                                                           classes))
    borderline = int((np.abs(probabilities - 0.5) < 1e-3).sum())
    print(f"twin: {borderline} class decisions within 1e-3 of the threshold")
    decided, truth = probabilities >= 0.5, presence > 0.5
    body = section(text.splitlines(), "per-class presence (class branch)") or []
    rows = {int(line.split()[0]): [float(v) for v in line.split()[2:]] for line in body[1:]}
    check(sorted(rows) == list(range(classes)), f"per-class rows {sorted(rows)}")
    tolerance = 1e-4 if borderline == 0 else 0.1
    for k in range(classes):
        tp = int((decided[:, k] & truth[:, k]).sum())
        fp = int((decided[:, k] & ~truth[:, k]).sum())
        fn = int((~decided[:, k] & truth[:, k]).sum())
        ious = [box_iou(boxes[i, 4 * k:4 * k + 4], true_boxes[i, 4 * k:4 * k + 4])
                for i in range(len(masks)) if truth[i, k]]
        want = [tp + fn, tp / (tp + fp) if tp + fp else np.nan, tp / (tp + fn) if tp + fn else np.nan,
                (2 * tp / (2 * tp + fn + fp)) if tp + fn + fp else np.nan,
                (5 * tp / (5 * tp + 4 * fn + fp)) if tp + fn + fp else np.nan,
                float((decided[:, k] == truth[:, k]).mean()), np.mean(ious) if ious else np.nan]
        got = rows.get(k, [np.nan] * 7)
        for name, g, w, tol in zip(("support", "precision", "recall", "f1", "f2", "accuracy",
                                    "box_iou"), got, want, (0, tolerance, tolerance, tolerance,
                                                            tolerance, tolerance, 1e-3)):
            same = (np.isnan(g) and np.isnan(w)) or abs(g - w) <= tol + 5e-5
            check(same, f"class {k} ({names[k]}) {name}: evaluate {g}, twin {w}")
    exact = float((decided == truth).all(axis=1).mean())
    check(abs(printed_value(text, "class_branch_exact_match") - exact) <= tolerance + 5e-5,
          f"exact match: twin {exact}")
    ious = [box_iou(boxes[i, 4 * k:4 * k + 4], true_boxes[i, 4 * k:4 * k + 4])
            for i in range(len(masks)) for k in range(classes) if truth[i, k]]
    check(abs(printed_value(text, "box_branch_mean_iou") - np.mean(ious)) <= 1e-3,
          f"box_branch_mean_iou: twin {np.mean(ious)}")


def main():
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    ccp = ccp_or_skip()
    if ccp is None:
        return 77
    os.makedirs(work, exist_ok=True)
    h5py = import_h5py(build)
    train, evaluate = (os.path.join(build, c) for c in ("train", "evaluate"))
    data = tiny_ccp(build, ccp, work, "ccp4")
    run_dir, job = os.path.join(work, "run"), os.path.join(work, "extended.ini")
    with open(job, "w") as f:
        f.write(f"[data]\ndataset = {data}\nlimit = 16\nval_limit = 4\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\nprecision = fp32\n"
                "branches = injected\ninject_blocks = 0,4\n"
                "[train]\nbatch = 4\nepochs = 4\nthreads = 2\n"
                f"[checkpoint]\ndir = {run_dir}\nresume = no\n")
    run([train, job], work)
    checkpoint = amplify_presence(h5py, os.path.join(run_dir, "last.h5"),
                                  os.path.join(work, "presence_amplified.h5"))
    base = [evaluate, "--checkpoint", checkpoint, "--data", data, "--split", "all", "--batch", "5",
            "--threads", "2", "--precision", "fp32"]
    text = run(base + ["--ground-truth-injection"], work).stdout
    print(text)
    with h5py.File(data, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["class_names"]]
    classes = len(names)
    probabilities, boxes, injected_predictions, masks = twin_outputs(h5py, checkpoint, data, classes)
    check(re.search(r"^branches: 24 images", text, re.M), "branches: 24 images")
    check_branches(text, probabilities, boxes, masks, classes, names)
    gt = miou_excluding_background(masks, injected_predictions, classes)
    printed_gt = printed_value(text, "gt_miou_excluding_background")
    check(abs(printed_gt - gt) <= GT_MIOU_TOLERANCE,
          f"gt_miou_excluding_background: evaluate {printed_gt}, twin {gt}")
    without = re.search(r"^gt_miou_excluding_background \S+ \((\S+) without\)", text, re.M)
    check(without and float(without.group(1)) == printed_value(text, "miou_excluding_background"),
          "the 'without' mIoU is not the plain report's")
    check(abs(printed_gt - printed_value(text, "miou_excluding_background")) > GT_MIOU_TOLERANCE,
          "ground-truth injection changed the mIoU by no more than the twin's tolerance: the "
          "check cannot tell it was applied")

    plain_dir = os.path.join(work, "plain")
    with open(job, "w") as f:
        f.write(f"[data]\ndataset = {data}\nlimit = 8\nval_limit = 4\n"
                "[model]\narch = r18\nheight = 64\nwidth = 64\nprecision = fp32\n"
                "[train]\nbatch = 4\nepochs = 1\nthreads = 2\n"
                f"[checkpoint]\ndir = {plain_dir}\nresume = no\n")
    run([train, job], work)
    refused = run([evaluate, "--checkpoint", os.path.join(plain_dir, "last.h5"), "--data", data,
                   "--ground-truth-injection"], work, expect=1).stdout
    check("has no branches" in refused and "'branches'" in refused,
          f"plain checkpoint + --ground-truth-injection: {refused}")
    print("evaluate_branches: " + ("FAIL" if FAILURES else "ok"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
