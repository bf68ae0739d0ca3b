"""ingest imaterialist on a synthetic layout (source_fixtures.py): every
dataset and attribute, masks pixel by pixel against an independent numpy
decoding of the CSV's RLE (overlaps: smaller wins, equal areas: later row
wins; attributes after '_' in ClassId; rows of an image scattered through
the file, quoted fields, runs across columns), placed by the file's own
/letterbox (one image needs no resize, the others are letterboxed with
nearest sampling); photos against the known content; the 46-class map and
the 9-class map (parts dropped so the garment shows, accessories ignored,
jumpsuit images excluded and counted).
Both releases' layouts: the checks above run on the 2019 (FGVC6) layout
(ImageId "<id>.jpg", ClassId "<category>_<attribute>..."); the same rows in
the 2020 (FGVC7) layout (ImageId "<id>", ClassId "<category>", AttributesIds
"a,b"), in the 2019 layout with some ImageIds without ".jpg", and either
layout with a UTF-8 byte order mark before the header give byte-identical
files. Attribute ids are read in both layouts and stored per row (/instances,
/attribute_ids; an unknown or malformed one makes its image bad, with the line); a header that is neither layout stops
the run naming the file and the expected columns.
Usage: ingest_imaterialist.py INGEST WRITE_JPEG PLUGIN_DIR WORK_DIR"""
import json
import glob
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


def check_instances(f, images):
    """/instances: every train.csv row of the images (the label map's drops and ignores too),
    by image, rows in line order, with its category and attribute ids (/attribute_ids)."""
    want = []
    for row, image in enumerate(images):
        for row_image, class_id, _, _ in s.imat_rows():
            if row_image == image:
                category, *attributes = class_id.split("_")
                want.append((row, int(category), [int(a) for a in attributes]))
    instances = f["instances"][()]
    types = instances.dtype
    assert types.names == ("image", "category_id", "attribute_count", "attribute_start"), types
    assert [types[n] for n in types.names] == [np.dtype(d) for d in ("<i8", "<i4", "<i4", "<i8")]
    ids = f["attribute_ids"][()]
    assert ids.dtype == np.dtype("<i4") and len(ids) == sum(len(a) for _, _, a in want), ids
    starts = np.concatenate([[0], np.cumsum(instances["attribute_count"])[:-1]])
    np.testing.assert_array_equal(instances["attribute_start"], starts)
    got = [(int(r["image"]), int(r["category_id"]),
            ids[r["attribute_start"]:r["attribute_start"] + r["attribute_count"]].tolist())
           for r in instances]
    assert got == want, (got, want)


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
    check_instances(f, images)


def check_46(root):
    """Returns the file written (from the 2019 layout) for the layout checks."""
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
    return out


BOM = b"\xef\xbb\xbf"


def edit_csv(root, edit):
    path = os.path.join(root, "train.csv")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(edit(data))


def expect_same(reference, root, name):
    """root ingested like check_46 gives the reference file byte for byte."""
    out = os.path.join(WORK, f"imat46_{name}.h5")
    result = ingest(root, out, "--seed", "3")
    assert "4 annotated images" in result.stdout, (name, result.stdout)
    with open(reference, "rb") as a, open(out, "rb") as b:
        if a.read() != b.read():
            with t.open_h5(reference, PLUGIN_DIR) as f, t.open_h5(out, PLUGIN_DIR) as g:
                for key in f:
                    assert np.array_equal(f[key][()], g[key][()]), (name, key)
            raise AssertionError(f"{name}: the file differs from the 2019 layout's")


def check_layouts(reference):
    lines = s.write_imaterialist(os.path.join(WORK, "check_2019"), WRITE_JPEG)
    assert lines[0] == "ImageId,EncodedPixels,Height,Width,ClassId"
    assert lines[1].startswith(s.B + ".jpg,") and lines[1].endswith(",1_115_136"), lines[1]
    root20 = os.path.join(WORK, "synthetic_imaterialist_2020")
    lines = s.write_imaterialist(root20, WRITE_JPEG, layout="2020")
    assert lines[0] == "ImageId,EncodedPixels,Height,Width,ClassId,AttributesIds"
    assert lines[1].startswith(s.B + ",") and lines[1].endswith(',1,"115,136"'), lines[1]
    assert lines[2].endswith(",6,"), "no attributes: an empty AttributesIds"
    assert all(".jpg" not in line for line in lines)
    expect_same(reference, root20, "2020")
    edit_csv(root20, lambda data: BOM + data)
    expect_same(reference, root20, "2020_bom")

    root19 = os.path.join(WORK, "synthetic_imaterialist_2019")
    s.write_imaterialist(root19, WRITE_JPEG)
    # Image A by "<id>.jpg" on its first row and "<id>" on the others, D (quoted) without.
    edit_csv(root19, lambda data: data.replace(f"\n{s.A}.jpg,".encode(), f"\n{s.A},".encode())
             .replace(f"\n{s.A},".encode(), f"\n{s.A}.jpg,".encode(), 1)
             .replace(f'"{s.D}.jpg"'.encode(), f'"{s.D}"'.encode()))
    with open(os.path.join(root19, "train.csv")) as f:
        text = f.read()
    assert text.count(f"\n{s.A}.jpg,") == 1 and text.count(f"\n{s.A},") == 3, text
    expect_same(reference, root19, "2019_mixed_ids")
    edit_csv(root19, lambda data: BOM + data)
    expect_same(reference, root19, "2019_bom")


def expect_failure(root, name, messages, *extra):
    out = os.path.join(WORK, f"imat_bad_{name}.h5")
    result = t.run([INGEST, "imaterialist", "--root", root, "--out", out, "--height", str(H),
                    "--width", str(W), *extra])
    assert result.returncode == 1, (name, result.returncode, result.stderr)
    for message in messages:
        assert message in result.stderr, (name, message, result.stderr)
    assert not os.path.exists(out) and not glob.glob(out + ".tmp*"), name
    print("expected failure:", result.stderr.strip().splitlines()[-1])


def with_class(class_id):
    """The fixture's rows with the first one's ClassId (2019 form) replaced."""
    rows = s.imat_rows()
    image, _, mask, quoted = rows[0]
    return [(image, class_id, mask, quoted)] + rows[1:]


def check_attributes():
    """Attribute ids are read in both layouts: malformed or unknown ones make
    the image bad (line 2 is image B's first row)."""
    root = os.path.join(WORK, "imat_attributes")
    unknown = "attribute id 999 is not in label_descriptions.json's attributes"
    cases = [  # layout, ClassId in 2019 form, message
        ("2019", "1_115_999", f"train.csv:2: ClassId '1_115_999': {unknown}"),
        ("2020", "1_115_999", f"train.csv:2: AttributesIds '115,999': {unknown}"),
        ("2019", "1_115_", "train.csv:2: ClassId '1_115_' is not <category>[_<attribute>...]"),
        ("2019", "1__115", "train.csv:2: ClassId '1__115' is not <category>[_<attribute>...]"),
        ("2020", "1_115__136",
         "train.csv:2: AttributesIds '115,,136' is not empty or <attribute>[,<attribute>...]"),
        ("2019", "46_3", "train.csv:2: unknown class id 46 (label_descriptions.json has 0..45)"),
        ("2020", "46_3", "train.csv:2: unknown class id 46 (label_descriptions.json has 0..45)"),
    ]
    for k, (layout, class_id, message) in enumerate(cases):
        s.write_imaterialist(root, WRITE_JPEG, with_class(class_id), layout=layout)
        expect_failure(root, f"attributes_{k}", [os.path.join(root, message)])
    # 2020: attributes belong in AttributesIds, not after '_' in ClassId.
    s.write_imaterialist(root, WRITE_JPEG, layout="2020")
    edit_csv(root, lambda data: data.replace(b',1,"115,136"\n', b',1_115,"136"\n', 1))
    expect_failure(root, "attributes_2020_class", [
        os.path.join(root, "train.csv:2: ClassId '1_115' is not <category> (2020 layout")])
    # A repeated id in label_descriptions.json's attributes breaks the source.
    descriptions = os.path.join(root, "label_descriptions.json")
    with open(descriptions) as f:
        doc = json.load(f)
    doc["attributes"][2]["id"] = 3
    with open(descriptions, "w") as f:
        json.dump(doc, f)
    expect_failure(root, "attributes_twice", [f"{descriptions}: attribute id 3 appears twice"],
                   "--skip-bad")
    # Without `attributes` in the json, any attribute id is accepted.
    s.write_imaterialist(root, WRITE_JPEG, with_class("1_115_999"))
    with open(descriptions) as f:
        doc = json.load(f)
    del doc["attributes"]
    with open(descriptions, "w") as f:
        json.dump(doc, f)
    ingest(root, os.path.join(WORK, "imat_no_attribute_list.h5"))


def check_headers():
    """A header that is neither layout stops the run (even with --skip-bad),
    naming the file, the missing column and both layouts' columns; a byte
    order mark is not part of the first column's name."""
    root = os.path.join(WORK, "imat_headers")
    lines = s.write_imaterialist(root, WRITE_JPEG, layout="2020")
    csv = os.path.join(root, "train.csv")
    expected = ("so it is neither iMaterialist layout: expected ImageId, EncodedPixels, Height, "
                "Width, ClassId (2019, FGVC6) or those and AttributesIds (2020, FGVC7)")
    body = "\n".join(lines[1:]) + "\n"
    cases = [  # header, missing column
        ("ImageId,EncodedPixels,Height,Width,CategoryId,AttributesIds", "ClassId"),
        ("image_id,EncodedPixels,Height,Width,ClassId,AttributesIds", "ImageId"),
        ("ImageId,EncodedPixels,ClassId,AttributesIds,X,Y", "Height"),  # like sample_submission
    ]
    for k, (header, missing) in enumerate(cases):
        for bom in (b"", BOM):
            with open(csv, "wb") as f:
                f.write(bom + (header + "\n" + body).encode())
            expect_failure(root, f"header_{k}_{len(bom)}", [
                f"{csv}:1: the header has no column {missing}, {expected}",
                f"the header is '{header}'"], "--skip-bad")


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
    reference = check_46(root)
    check_9(root)
    check_layouts(reference)
    check_attributes()
    check_headers()
    print("imaterialist ingest ok")


main()
