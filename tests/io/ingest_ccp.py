"""ingest on 8 real CCP photos of each kind at 192x128: masks equal an
independent nearest-neighbour resize of the .mat groundtruth (read by a
separate MATLAB v5 parser), tags equal the classes present (annotated) or the
.mat tags (tag-only), images equal an independent decode (PIL, when present)
plus numpy bilinear resize within decoder rounding.
Usage: ingest_ccp.py INGEST PLUGIN_DIR WORK_DIR   (CCP_DIR from the environment;
exit 77 when it is absent)"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402

INGEST, PLUGIN_DIR, WORK = sys.argv[1:4]
CCP = os.environ.get("CCP_DIR", "")
H, W, LIMIT = 192, 128, 8


def decode_photo(path):
    try:
        from PIL import Image
    except ImportError:
        return None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def check_photo(f, i, path, h, w):
    photo = decode_photo(path)
    if photo is None:
        return False
    assert photo.shape[:2] == (h, w)
    diff = np.abs(f["images"][i].astype(np.float64) - t.resize_bilinear(photo, H, W))
    # Two libjpeg builds may round the IDCT and upsampling differently by a level or two.
    assert diff.mean() < 1.0 and diff.max() <= 16, (path, diff.mean(), diff.max())
    return True


def check_annotated(out):
    pixel_dir = os.path.join(CCP, "annotations", "pixel-level")
    ids = sorted(n[:-4] for n in os.listdir(pixel_dir) if n.endswith(".mat"))[:LIMIT]
    compared = 0
    with t.open_h5(out, PLUGIN_DIR) as f:
        names = list(f.attrs["class_names"])
        assert len(names) == 59 and names[0] == "null" and names[19] == "hair"
        assert names[41] == "skin" and f.attrs["num_classes"] == 59
        assert [s.decode() for s in f["ids"][()]] == ids
        for i, id_ in enumerate(ids):
            truth = t.read_mat_matrix(os.path.join(pixel_dir, id_ + ".mat"), "groundtruth")
            truth = truth.astype(np.uint8)
            h, w = truth.shape
            assert tuple(f["source_size"][i]) == (h, w)
            np.testing.assert_array_equal(f["masks"][i], t.resize_nearest(truth, H, W))
            tags = np.zeros(59, np.uint8)
            tags[np.unique(truth)] = 1
            np.testing.assert_array_equal(f["tags"][i], tags)
            compared += check_photo(f, i, os.path.join(CCP, "photos", id_ + ".jpg"), h, w)
    return compared


def check_tag_only(out):
    tag_dir = os.path.join(CCP, "annotations", "image-level")
    ids = sorted(n[:-4] for n in os.listdir(tag_dir) if n.endswith(".mat"))[:LIMIT]
    with t.open_h5(out, PLUGIN_DIR) as f:
        assert "masks" not in f
        assert [s.decode() for s in f["ids"][()]] == ids
        for i, id_ in enumerate(ids):
            tags = np.zeros(59, np.uint8)
            tags[t.read_mat_matrix(os.path.join(tag_dir, id_ + ".mat"), "tags").astype(int)] = 1
            np.testing.assert_array_equal(f["tags"][i], tags)


def main():
    if not os.path.isdir(os.path.join(CCP, "photos")):
        print(f"CCP not found at '{CCP}' (set CCP_DIR)")
        sys.exit(77)
    out = os.path.join(WORK, "ccp_192x128.h5")
    result = t.run([INGEST, "ccp", "--root", CCP, "--out", out, "--height", str(H),
                    "--width", str(W), "--limit", str(LIMIT)])
    assert result.returncode == 0, result.stderr
    assert "img/s" in result.stderr, "no progress line on stderr"
    compared = check_annotated(out)
    check_tag_only(out.replace(".h5", "_tags.h5"))
    print(f"CCP ingest ok; photos compared with an independent decode: {compared}/{LIMIT}"
          + ("" if compared else " (PIL not installed)"))


main()
