#!/usr/bin/python3
"""The PyTorch twin trained with the C engine's recipe, for the CCP accuracy table
(results/ccp_table.md): reads an `ingest ccp` HDF5 file, trains the twin's plain U-Net
(tests/twin/unet_twin.py: same layers, names and initialisation as the engine) on its train
split and scores the epoch with the best validation mIoU on its test split, with the engine's
metric definitions (src/model/metrics.c: a class whose union is empty is left out; ignored
pixels, label 255, are not counted).

The recipe is jobs/ccp_r34.ini's: AdamW (betas 0.9/0.999, eps 1e-8, weight decay 1e-4), the
engine's one-cycle schedule (tests/twin/unet_twin.py one_cycle_lr) to --lr with 10% warm-up,
batch 8 with the last partial batch dropped (as the engine's loader), gradient norm clipped to 1,
weighted cross-entropy (background 1, others 2), a horizontal flip with probability 0.5 (image and
mask), ImageNet normalisation (io/image/normalise.c). The data order and flips come from
PyTorch's generator, not the engine's, so the two runs see different sample orders.

Run with Debian's Python (python3-torch, h5py, hdf5plugin for the zstd masks):
  /usr/bin/python3 results/ccp_twin_train.py --data FILE.h5 --arch r34 --epochs 12
"""

import argparse
import copy
import os
import sys
import time

import h5py
import hdf5plugin  # noqa: F401  (registers the zstd filter of /masks)
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "twin"))
import unet_twin  # noqa: E402


def load_split(path, split):
    with h5py.File(path, "r") as f:
        rows = np.nonzero(f["split"][:] == split)[0]
        images = f["images"][rows]
        masks = f["masks"][rows]
        classes = int(f.attrs["num_classes"])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(unet_twin.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(unet_twin.IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last), torch.from_numpy(masks), classes


def confusion(model, x, y, classes, batch):
    counts = torch.zeros(classes, classes, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch):
            predicted = model(x[start:start + batch]).argmax(1)
            truth = y[start:start + batch].long()
            keep = truth != unet_twin.IGNORE_INDEX
            counts += torch.bincount(truth[keep] * classes + predicted[keep],
                                     minlength=classes * classes).view(classes, classes)
    model.train()
    return counts


def metrics(counts):
    counts = counts.double()
    intersection = counts.diag()
    union = counts.sum(1) + counts.sum(0) - intersection
    present = union > 0
    iou = intersection / union.clamp(min=1)
    foreground = present.clone()
    foreground[0] = False
    return {"miou_including_background": float(iou[present].mean()),
            "miou_excluding_background": float(iou[foreground].mean()),
            "pixel_accuracy": float(intersection.sum() / counts.sum())}


def score_checkpoint(args):
    """The test-split metrics of an engine checkpoint, to check that this script's metrics are
    the engine's (`evaluate --split test` on the same file must print the same numbers)."""
    torch.set_num_threads(args.threads)
    x_test, y_test, classes = load_split(args.data, 2)
    with h5py.File(args.score_checkpoint, "r") as f:
        state = {name: torch.from_numpy(f["params"][name][()]) for name in f["params"]}
        state.update({name: torch.from_numpy(f["buffers"][name][()]) for name in f["buffers"]})
    model = unet_twin.build_model(args.arch, classes, args.seed)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        sys.exit("%s: missing %s, unexpected %s" % (args.score_checkpoint, missing,
                                                    result.unexpected_keys))
    for key, value in metrics(confusion(model, x_test, y_test, classes, args.batch)).items():
        print("%s %.4f" % (key, value))


def train(args):
    torch.set_num_threads(args.threads)
    x_train, y_train, classes = load_split(args.data, 0)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_val, y_val, _ = load_split(args.data, 1)
    x_test, y_test, _ = load_split(args.data, 2)
    model = unet_twin.build_model(args.arch, classes, args.seed).to(
        memory_format=torch.channels_last)
    optimizer = unet_twin.make_optimizer(model, "adamw", args.lr, (0.9, 0.999), 1e-8,
                                         args.weight_decay)
    weights = unet_twin.class_weights_for(classes)
    steps_per_epoch = len(x_train) // args.batch
    total_steps = steps_per_epoch * args.epochs
    generator = torch.Generator().manual_seed(args.seed)
    best = (-1.0, 0, None)
    step = 0
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(x_train), generator=generator)
        for s in range(steps_per_epoch):
            rows = order[s * args.batch:(s + 1) * args.batch]
            xb, yb = x_train[rows].clone(), y_train[rows].clone()
            flip = torch.rand(len(rows), generator=generator) < 0.5
            xb[flip] = xb[flip].flip(-1)
            yb[flip] = yb[flip].flip(-1)
            for group in optimizer.param_groups:
                group["lr"] = unet_twin.one_cycle_lr(step, args.lr, args.warmup, total_steps)
            loss = F.cross_entropy(model(xb.contiguous(memory_format=torch.channels_last)),
                                   yb.long(), weight=weights,
                                   ignore_index=unet_twin.IGNORE_INDEX)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            unet_twin.clip_gradients(model, unet_twin.grad_total_norm(model), args.clip_norm)
            optimizer.step()
            step += 1
        val = metrics(confusion(model, x_val, y_val, classes, args.batch))
        elapsed = time.time() - start
        print("epoch %d/%d loss %.4f val_miou %.4f | %.0f s, %.2f img/s" %
              (epoch, args.epochs, float(loss), val["miou_excluding_background"], elapsed,
               step * args.batch / elapsed), flush=True)
        if val["miou_excluding_background"] > best[0]:
            best = (val["miou_excluding_background"], epoch, copy.deepcopy(model.state_dict()))
    train_seconds = time.time() - start
    model.load_state_dict(best[2])
    test = metrics(confusion(model, x_test, y_test, classes, args.batch))
    print("best_val_miou %.4f" % best[0])
    print("best_epoch %d" % best[1])
    for key, value in test.items():
        print("%s %.4f" % (key, value))
    print("test_images %d" % len(x_test))
    print("train_seconds %.0f" % train_seconds)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="an `ingest ccp` HDF5 file with masks")
    p.add_argument("--arch", choices=sorted(unet_twin.ARCH_LAYERS), default="r34")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="train on the first N only; 0 = all")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--score-checkpoint", metavar="FILE.h5",
                   help="do not train: print the test metrics of this engine checkpoint")
    args = p.parse_args()
    score_checkpoint(args) if args.score_checkpoint else train(args)


if __name__ == "__main__":
    main()
