"""ingest all of CCP (904 annotated, 1094 tag-only photos) at 288x192 and read
every dataset of both files back with stock h5py and `import hdf5plugin` (not
our filter plugin): counts, shapes, dtypes, chunking and the zstd filter of
/masks; every mask against an independent nearest-neighbour resize of its
.mat groundtruth (read by fp_testlib's own MATLAB v5 parser); tags; ids;
source sizes and letterboxes; photo padding; split values and shares; the
attributes.
Usage: ingest_ccp_full.py INGEST WORK_DIR   (CCP_DIR from the environment; exit 77 when absent)"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402

INGEST, WORK = sys.argv[1:3]
CCP = os.environ.get("CCP_DIR", "")
H, W, K = 288, 192, 59
ANNOTATED, TAG_ONLY = 904, 1094


def open_stock(path):
    """h5py as anyone has it: the zstd filter comes from hdf5plugin."""
    os.environ.pop("HDF5_PLUGIN_PATH", None)
    import h5py
    import hdf5plugin  # noqa: F401  (registers filter 32015)
    return h5py.File(path, "r")


def read_everything(f):
    """Reads every dataset in full; returns them by name."""
    data = {}
    f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if hasattr(obj, "shape")
                 else None)
    return data


def check_common(f, data, n, has_masks):
    expected = {"images": ((n, H, W, 3), "uint8"), "tags": ((n, K), "uint8"),
                "ids": ((n,), "S64"), "source_size": ((n, 2), "int32"),
                "letterbox": ((n, 5), "float32"), "split": ((n,), "uint8")}
    if has_masks:
        expected["masks"] = ((n, H, W), "uint8")
    assert set(data) == set(expected) | {"skipped"}, sorted(data)
    for name, (shape, dtype) in expected.items():
        assert data[name].shape == shape and data[name].dtype == np.dtype(dtype), \
            (name, data[name].shape, data[name].dtype)
    assert data["skipped"].shape == (0,)
    assert f["images"].chunks == (1, H, W, 3) and f["images"].compression is None
    a = f.attrs
    assert (a["height"], a["width"], a["num_classes"], a["schema_version"]) == (H, W, K, 1)
    assert a["source"] == "ccp" and a["label_map"] == "ccp59" and a["split_seed"] == 1
    names = list(a["class_names"])
    assert len(names) == K and names[0] == "null" and names[41] == "skin"
    split = data["split"]
    assert set(np.unique(split)) <= {0, 1, 2}
    shares = np.bincount(split, minlength=3) / n
    assert 0.08 <= shares[1] <= 0.12 and 0.08 <= shares[2] <= 0.12, shares
    for i in range(n):
        h, w = (int(v) for v in data["source_size"][i])
        np.testing.assert_allclose(data["letterbox"][i], t.letterbox(h, w, H, W), rtol=1e-6)
        _, oy, ox, rh, rw = t.letterbox(h, w, H, W)
        image = data["images"][i]
        outside = np.ones((H, W), bool)
        outside[oy:oy + rh, ox:ox + rw] = False
        assert (image[outside] == 0).all() and image[~outside].std() > 1, i


def check_annotated(path):
    mats = os.path.join(CCP, "annotations", "pixel-level")
    ids = sorted(n[:-4] for n in os.listdir(mats) if n.endswith(".mat"))
    assert len(ids) == ANNOTATED, len(ids)
    with open_stock(path) as f:
        assert f["masks"].chunks == (1, H, W)
        assert f["masks"].id.get_create_plist().get_filter(0)[0] == 32015
        data = read_everything(f)
        check_common(f, data, ANNOTATED, True)
    assert [i.decode() for i in data["ids"]] == ids
    for i, id_ in enumerate(ids):
        truth = t.read_mat_matrix(os.path.join(mats, id_ + ".mat"), "groundtruth").astype(np.uint8)
        assert tuple(data["source_size"][i]) == truth.shape, id_
        np.testing.assert_array_equal(data["masks"][i], t.resize_nearest(truth, H, W),
                                      err_msg=id_)
        tags = np.zeros(K, np.uint8)
        tags[np.unique(truth)] = 1
        np.testing.assert_array_equal(data["tags"][i], tags, err_msg=id_)


def check_tag_only(path):
    mats = os.path.join(CCP, "annotations", "image-level")
    ids = sorted(n[:-4] for n in os.listdir(mats) if n.endswith(".mat"))
    assert len(ids) == TAG_ONLY, len(ids)
    with open_stock(path) as f:
        data = read_everything(f)
        check_common(f, data, TAG_ONLY, False)
    assert [i.decode() for i in data["ids"]] == ids
    for i, id_ in enumerate(ids):
        tags = np.zeros(K, np.uint8)
        tags[t.read_mat_matrix(os.path.join(mats, id_ + ".mat"), "tags").astype(int)] = 1
        np.testing.assert_array_equal(data["tags"][i], tags, err_msg=id_)


def main():
    if not os.path.isdir(os.path.join(CCP, "photos")):
        print(f"CCP not found at '{CCP}' (set CCP_DIR)")
        sys.exit(77)
    out = os.path.join(WORK, "ccp_full_288x192.h5")
    start = time.monotonic()
    result = t.run([INGEST, "ccp", "--root", CCP, "--out", out, "--height", str(H),
                    "--width", str(W)])
    assert result.returncode == 0, result.stderr
    ingest_seconds = time.monotonic() - start
    assert f"{ANNOTATED} annotated images" in result.stdout, result.stdout
    assert f"{TAG_ONLY} tag-only images" in result.stdout, result.stdout
    check_annotated(out)
    check_tag_only(out.replace(".h5", "_tags.h5"))
    for path in (out, out.replace(".h5", "_tags.h5")):
        os.remove(path)  # 330 MB
    print(f"full CCP ok: ingest {ingest_seconds:.1f} s "
          f"({(ANNOTATED + TAG_ONLY) / ingest_seconds:.0f} img/s), "
          f"total {time.monotonic() - start:.1f} s")


main()
