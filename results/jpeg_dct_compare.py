"""Two parse_catalog master files of the same catalog and checkpoint (full against DCT-scaled
JPEG decode, results/jpeg_dct_scaling.md): how many mask pixels and how much of each per-image
class statistic differ.
Usage: jpeg_dct_compare.py FULL/master.h5 SCALED/master.h5   (h5py and hdf5plugin)"""
import sys

import h5py
import hdf5plugin  # noqa: F401  (the zstd filter)
import numpy as np

def load(path):
    with h5py.File(path, "r") as f:
        d = {k: f[k][()] for k in ["ids", "masks", "pixel_fraction", "mean_confidence", "mean_rgb",
                                   "mean_lab", "colour", "bbox", "source_size", "letterbox"]}
        d["masks_source"] = f["masks_source"][()] if "masks_source" in f else None
        d["names"] = [c.decode() if isinstance(c, bytes) else c for c in f.attrs["class_names"]]
    return d

a, b = load(sys.argv[1]), load(sys.argv[2])
assert (a["ids"] == b["ids"]).all()
n = len(a["ids"])
print(f"{n} images, {len(a['names'])} classes")
print("source_size identical:", np.array_equal(a["source_size"], b["source_size"]),
      "letterbox identical:", np.array_equal(a["letterbox"], b["letterbox"]))
inside = a["masks"] != 255
assert np.array_equal(inside, b["masks"] != 255)
diff = (a["masks"] != b["masks"]) & inside
print(f"mask pixels that differ (model resolution, photo pixels only): {diff.sum()} of {inside.sum()} = {diff.sum() / inside.sum():.4%}")
per_image = diff.reshape(n, -1).sum(1) / inside.reshape(n, -1).sum(1)
print(f"  per image: median {np.median(per_image):.4%}, 90th pct {np.percentile(per_image, 90):.4%}, max {per_image.max():.4%} ({a['ids'][per_image.argmax()].decode()}); images identical: {(per_image == 0).sum()}")
if a["masks_source"] is not None:
    sa, sb = a["masks_source"], b["masks_source"]
    ins = sa != 255
    d2 = (sa != sb) & ins
    print(f"masks_source pixels that differ: {d2.sum() / ins.sum():.4%} of {ins.sum()}")
fa, fb = a["pixel_fraction"], b["pixel_fraction"]
l1 = np.abs(fa - fb).sum(1) / 2
print(f"pixel_fraction: mean |change| per (image, class) {np.abs(fa - fb).mean():.2e}, max {np.abs(fa - fb).max():.4f}; "
      f"per image total variation mean {l1.mean():.4%} max {l1.max():.4%}")
present_a, present_b = fa > 0, fb > 0
print(f"class present/absent flips: {(present_a != present_b).sum()} of {present_a.size} (image, class) pairs")
both = present_a & present_b
for name in ["mean_confidence"]:
    d = np.abs(a[name] - b[name])[both]
    print(f"{name}: mean |change| {d.mean():.2e}, max {d.max():.4f} (pairs present in both)")
for name in ["mean_rgb", "mean_lab"]:
    signed = (b[name] - a[name])[both]
    d = np.abs(signed)
    print(f"{name}: mean |change| {d.mean():.3f}, 99th pct {np.percentile(d, 99):.3f}, "
          f"max {d.max():.3f}; mean signed change per channel (scaled - full) "
          + " ".join(f"{v:+.3f}" for v in signed.mean(0)))
print(f"colour name changes: {(a['colour'] != b['colour'])[both].sum()} of {both.sum()} present (image, class) pairs")
bb = np.abs(a["bbox"].astype(int) - b["bbox"].astype(int))[both]
print(f"bbox: mean |change| per coordinate {bb.mean():.3f} px, max {bb.max()} px; boxes unchanged {(bb.max(1) == 0).mean():.2%}")
# the big classes: per class mean fraction before/after
mean_a, mean_b = fa.mean(0), fb.mean(0)
order = np.argsort(-mean_a)[:6]
print("mean pixel_fraction of the largest classes (full -> scaled): " + ", ".join(
    f"{a['names'][k]} {mean_a[k]:.4f} -> {mean_b[k]:.4f}" for k in order))
