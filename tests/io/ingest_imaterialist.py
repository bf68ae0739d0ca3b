"""ingest imaterialist on a synthetic layout (source_fixtures.py): every
dataset and attribute, masks pixel by pixel against an independent numpy
decoding of the CSV's RLE (overlaps: smaller wins, equal areas: later row
wins; attributes after '_' in ClassId; rows of an image scattered through
the file, quoted fields, runs across columns), placed by the file's own
/letterbox (one image needs no resize, the others are letterboxed with
nearest sampling); photos against the known content; the 46-class map and
the 9-class map (parts dropped so the garment shows, accessories ignored,
jumpsuit images excluded and counted).
Usage: ingest_imaterialist.py INGEST WRITE_JPEG PLUGIN_DIR WORK_DIR"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402
import source_fixtures as s  # noqa: E402

INGEST, WRITE_JPEG, PLUGIN_DIR, WORK = sys.argv[1:5]
H, W = 64, 96


def ingest(root, out, *extra):
    result = t.run([INGEST, "imaterialist", "--root", root, "--out", out, "--height", str(H),
                    "--width", str(W), *extra])
    assert result.returncode == 0, result.stderr
    assert "img/s" in result.stderr, "no progress line"
    return result


def check_schema(f, n, k, label_map):
    expected = {"images": ((n, H, W, 3), "uint8"), "masks": ((n, H, W), "uint8"),
                "tags": ((n, k), "uint8"), "ids": ((n,), "S64"), "source_size": ((n, 2), "int32"),
                "letterbox": ((n, 5), "float32"), "split": ((n,), "uint8")}
    for name, (shape, dtype) in expected.items():
        assert f[name].shape == shape and f[name].dtype == np.dtype(dtype), \
            (name, f[name].shape, f[name].dtype)
    for absent in ("items", "pair_id", "source"):
        assert absent not in f, f"/{absent} in an iMaterialist file"
    assert f["masks"].id.get_create_plist().get_filter(0)[0] == 32015
    assert f["skipped"].shape == (0,)
    a = f.attrs
    assert (a["height"], a["width"], a["num_classes"], a["schema_version"]) == (H, W, k, 1)
    assert a["source"] == "imaterialist" and a["label_map"] == label_map
    assert set(np.unique(f["split"][()])) <= {0, 1, 2}


def check_images(f, images, expected, k):
    """images: the ImageIds the file must hold, in order."""
    assert [i.decode() for i in f["ids"][()]] == images
    for row, image in enumerate(images):
        h, w = s.IMAT_SIZES[image]
        labels, excluded = expected[image]
        assert not excluded, image
        assert tuple(f["source_size"][row]) == (h, w)
        box = f["letterbox"][row]
        np.testing.assert_allclose(box, t.letterbox(h, w, H, W), rtol=1e-6)
        mask = f["masks"][row]
        if (h, w) == (H, W):  # no resize: the mask is the decoded RLE itself
            np.testing.assert_array_equal(mask, labels, err_msg=image)
        np.testing.assert_array_equal(mask, s.place_nearest(labels, box, H, W), err_msg=image)
        np.testing.assert_array_equal(f["tags"][row], s.tags_of(labels, k), err_msg=image)
        s.check_photo(f, row, h, w, H, W)


def check_46(root):
    out = os.path.join(WORK, "imat46.h5")
    result = ingest(root, out, "--seed", "3")
    assert "4 annotated images" in result.stdout and "0 excluded" in result.stdout, result.stdout
    lut = {c: c + 1 for c in range(46)}
    expected = s.imat_expected(root, lut)
    with t.open_h5(out, PLUGIN_DIR) as f:
        check_schema(f, 4, 47, "imaterialist46")
        assert list(f.attrs["class_names"]) == ["background"] + s.IMAT_NAMES
        check_images(f, [s.A, s.B, s.C, s.D], expected, 47)
        # Spot checks of the rules on known pixels (full-resolution image A has no resize).
        mask_a = f["masks"][0]
        assert mask_a[20, 65] == 32, "the sleeve (smaller) lies on the dress"
        assert mask_a[32, 30] == 20, "the belt (smaller) lies on the dress"
        assert mask_a[10, 75] == 32 and mask_a[2, 2] == 0
    labels_b = expected[s.B][0]
    assert labels_b[57, 30] == 7 and labels_b[8, 8] == 9 and labels_b[3, 3] == 8
    assert labels_b[100, 70] == 25 and labels_b[5, 72] == 25, "the bag run crosses columns"
    again = os.path.join(WORK, "imat46_again.h5")
    ingest(root, again, "--seed", "3")
    with open(out, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read(), "two runs with the same input differ"


def check_9(root):
    out = os.path.join(WORK, "imat9.h5")
    result = ingest(root, out, "--labels", "imaterialist9")
    assert "3 annotated images" in result.stdout and "1 excluded" in result.stdout, result.stdout
    expected = s.imat_expected(root, s.NINE_OF_CATEGORY)
    assert expected[s.C][1], "the jumpsuit image must be excluded"
    with t.open_h5(out, PLUGIN_DIR) as f:
        check_schema(f, 3, 9, "imaterialist9")
        assert list(f.attrs["class_names"]) == s.NINE_CLASSES
        check_images(f, [s.A, s.B, s.D], expected, 9)
        mask_a = f["masks"][0]
        assert mask_a[20, 65] == 6, "a dropped sleeve leaves the dress visible"
        assert mask_a[20, 75] == 0, "a dropped sleeve off the dress leaves background"
        assert mask_a[32, 30] == 255, "the belt is ignored"


def main():
    root = os.path.join(WORK, "synthetic_imaterialist")
    s.write_imaterialist(root, WRITE_JPEG)
    check_46(root)
    check_9(root)
    print("imaterialist ingest ok")


main()
