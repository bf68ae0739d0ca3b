"""ingest deepfashion2 on a synthetic layout (source_fixtures.py): every
dataset and attribute; masks pixel by pixel against an independent numpy
rasterisation (even-odd at pixel centres: a concave polygon, a self-crossing
bow tie, a ring with a hole, float coordinates, vertices outside the image,
an item of two polygons; overlaps: smaller wins, equal areas: later item
wins, item10 after item2), placed by the file's /letterbox (one image needs
no resize); /items, /pair_id and /source field by field; photos against the
known content; a label map with drop, ignore and !exclude.
Usage: ingest_deepfashion2.py INGEST WRITE_JPEG PLUGIN_DIR WORK_DIR"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402
import source_fixtures as s  # noqa: E402

INGEST, WRITE_JPEG, PLUGIN_DIR, WORK = sys.argv[1:5]
H, W = 64, 96
ITEM_FIELDS = ["image", "item", "category_id", "style", "scale", "occlusion", "zoom_in",
               "viewpoint", "source_box", "box"]
FOLD_MAP = """# DeepFashion2 folded for the test
0 background
1 top
2 top
3 top
4 top
5 drop    # vest: not drawn
6 ignore  # sling
7 bottom
8 bottom
9 bottom
10 dress
11 dress
12 dress
13 !exclude  # sling dress
"""
FOLD_LUT = {1: 1, 2: 1, 3: 1, 4: 1, 5: s.DROP, 6: s.IGNORE, 7: 2, 8: 2, 9: 2, 10: 3, 11: 3,
            12: 3, 13: s.EXCLUDE}


def ingest(root, out, *extra):
    result = t.run([INGEST, "deepfashion2", "--root", root, "--out", out, "--height", str(H),
                    "--width", str(W), *extra])
    assert result.returncode == 0, result.stderr
    return result


def check_schema(f, n, k, items, label_map):
    expected = {"images": ((n, H, W, 3), "uint8"), "masks": ((n, H, W), "uint8"),
                "tags": ((n, k), "uint8"), "ids": ((n,), "S64"), "source_size": ((n, 2), "int32"),
                "letterbox": ((n, 5), "float32"), "split": ((n,), "uint8"),
                "pair_id": ((n,), "int32"), "source": ((n,), "uint8"), "items": ((items,), None)}
    for name, (shape, dtype) in expected.items():
        assert f[name].shape == shape, (name, f[name].shape, shape)
        assert dtype is None or f[name].dtype == np.dtype(dtype), (name, f[name].dtype)
    for absent in ("instances", "attribute_ids"):
        assert absent not in f, f"/{absent} in a DeepFashion2 file"
    types = f["items"].dtype
    assert list(types.names) == ITEM_FIELDS, types.names
    assert types["image"] == np.dtype("<i8") and types["category_id"] == np.dtype("<i4")
    assert types["box"] == np.dtype(("<f4", (4,))), types["box"]
    assert f["skipped"].shape == (0,)
    a = f.attrs
    assert (a["height"], a["width"], a["num_classes"]) == (H, W, k)
    assert a["source"] == "deepfashion2" and a["label_map"] == label_map


def check_file(f, names, lut, k):
    docs = s.df2_annotations()
    assert [i.decode() for i in f["ids"][()]] == names
    rows = f["items"][()]
    expected_rows = []
    for row, name in enumerate(names):
        doc = docs[name]
        h, w = s.DF2_SIZES[name]
        labels, excluded = s.df2_expected(doc, h, w, lut)
        assert not excluded
        assert tuple(f["source_size"][row]) == (h, w)
        box = f["letterbox"][row]
        np.testing.assert_allclose(box, t.letterbox(h, w, H, W), rtol=1e-6)
        mask = f["masks"][row]
        if (h, w) == (H, W):
            np.testing.assert_array_equal(mask, labels, err_msg=name)
        np.testing.assert_array_equal(mask, s.place_nearest(labels, box, H, W), err_msg=name)
        np.testing.assert_array_equal(f["tags"][row], s.tags_of(labels, k), err_msg=name)
        s.check_photo(f, row, h, w, H, W)
        assert f["pair_id"][row] == doc["pair_id"]
        assert f["source"][row] == (doc["source"] == "user")
        _, oy, ox, rh, rw = (float(v) for v in box)
        for n, item in s.df2_items(doc):
            x1, y1, x2, y2 = item["bounding_box"]
            letterboxed = [ox + x1 * rw / w, oy + y1 * rh / h, ox + x2 * rw / w, oy + y2 * rh / h]
            expected_rows.append((row, n, item, letterboxed))
    assert len(rows) == len(expected_rows), (len(rows), len(expected_rows))
    for got, (row, n, item, letterboxed) in zip(rows, expected_rows):
        assert (got["image"], got["item"], got["category_id"]) == (row, n, item["category_id"])
        for field in ("style", "scale", "occlusion", "zoom_in", "viewpoint"):
            assert got[field] == item[field], (row, n, field)
        np.testing.assert_allclose(got["source_box"], item["bounding_box"], rtol=1e-6)
        np.testing.assert_allclose(got["box"], letterboxed, rtol=1e-6, atol=1e-5)


def main():
    root = os.path.join(WORK, "synthetic_deepfashion2")
    s.write_deepfashion2(root, WRITE_JPEG)
    names = sorted(s.DF2_SIZES)

    out = os.path.join(WORK, "df2.h5")
    result = ingest(root, out)
    assert "4 annotated images" in result.stdout and "0 excluded" in result.stdout, result.stdout
    with t.open_h5(out, PLUGIN_DIR) as f:
        check_schema(f, 4, 14, 11, "deepfashion2_13")
        assert list(f.attrs["class_names"]) == ["background"] + s.DF2_NAMES
        check_file(f, names, {c: c for c in range(1, 14)}, 14)
        mask = f["masks"][0]  # 000001, not resized
        assert mask[25, 40] == 8 and mask[35, 20] == 2, "the trousers (smaller) cover the top"
        assert mask[25, 70] == 9 and mask[25, 77] == 0, "the bow tie's crossing is outside"
    identity = {c: c for c in range(14)}
    labels, _ = s.df2_expected(s.df2_annotations()["000002"], 90, 70, identity)
    assert labels[20, 20] == 6 and labels[8, 20] == 5, "the ring's hole shows what lies beneath"
    labels, _ = s.df2_expected(s.df2_annotations()["000003"], 40, 100, identity)
    assert labels[25, 55] == 4 and labels[35, 65] == 1, "item10 (equal area) lies on item2"

    folded = os.path.join(WORK, "df2_folded.h5")
    map_path = os.path.join(WORK, "df2_fold.map")
    with open(map_path, "w") as m:
        m.write(FOLD_MAP)
    result = ingest(root, folded, "--labels", map_path)
    assert "3 annotated images" in result.stdout and "1 excluded" in result.stdout, result.stdout
    with t.open_h5(folded, PLUGIN_DIR) as f:
        check_schema(f, 3, 4, 9, "df2_fold")
        assert list(f.attrs["class_names"]) == ["background", "top", "bottom", "dress"]
        check_file(f, names[:3], FOLD_LUT, 4)
        assert 255 in f["masks"][1], "the sling is ignored"
    print("deepfashion2 ingest ok")


main()
