"""ingest imaterialist and deepfashion2 on bad input. Each bad item alone
among good ones (truncated JPEG, missing photo, RLE run past the image end,
Height x Width that differ from the photo, unknown class id, a polygon with
an odd number of coordinates, malformed JSON, a category name that does not
match its id, a missing field): exit 1, the message names the file and the
CSV line or the json item, no output or temporary file is left. With
--skip-bad all of them together: the good items are written and the bad ones
recorded in /skipped with their reasons. A malformed train.csv or
label_descriptions.json stops the run even with --skip-bad. Bad label maps
and usage errors too.
Usage: ingest_sources_bad.py INGEST WRITE_JPEG PLUGIN_DIR WORK_DIR"""
import json
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402
import source_fixtures as s  # noqa: E402

INGEST, WRITE_JPEG, PLUGIN_DIR, WORK = sys.argv[1:5]


def ingest(source, root, out, *extra):
    return t.run([INGEST, source, "--root", root, "--out", out, "--height", "32", "--width", "32",
                  *extra])


def no_output_left(out):
    left = [p for p in [out] + glob.glob(out + ".tmp*") if os.path.exists(p)]
    assert not left, f"left behind: {left}"


def expect_failure(source, root, name, messages, *extra):
    out = os.path.join(WORK, f"bad_{name}.h5")
    result = ingest(source, root, out, *extra)
    assert result.returncode == 1, (name, result.returncode, result.stderr)
    for message in messages:
        assert message in result.stderr, (name, message, result.stderr)
    no_output_left(out)
    print("expected failure:", result.stderr.strip().splitlines()[-1])


def truncate(path, size):
    with open(path, "rb") as f:
        data = f.read()[:size]
    with open(path, "wb") as f:
        f.write(data)


# ---- iMaterialist ----

GOOD_IMAT = {"good00000000000000000000000000a1": (30, 20), "good00000000000000000000000000b2": (24, 36)}
# ImageId -> (size in the CSV, ClassId, RLE or None for a valid one, photo size or None for none)
BAD_IMAT = {
    "bad0000000000000000000000truncjpg": ((30, 30), "1", None, (30, 30)),
    "bad000000000000000000000000nojpeg": ((30, 30), "1", None, None),
    "bad0000000000000000000000rlerange": ((30, 30), "1", "1 10 895 10", (30, 30)),
    "bad00000000000000000000sizediffer": ((40, 40), "1", None, (30, 30)),
    "bad0000000000000000000unknownclass": ((30, 30), "46_3", None, (30, 30)),
}


def imat_layout(name, bad_ids):
    """A root with the good images and the bad ones named; returns (root, lines of train.csv)."""
    root = os.path.join(WORK, name)
    rows, sizes, photo_sizes = [], {}, {}
    for image, (h, w) in GOOD_IMAT.items():
        rows.append((image, "10", s.rect(h, w, 2, h - 2, 3, w - 3), False))
        rows.append((image, "31", s.rect(h, w, 4, 8, 3, 8), False))
        sizes[image] = photo_sizes[image] = (h, w)
    for image in bad_ids:
        (h, w), class_id, rle, photo = BAD_IMAT[image]
        rows.append((image, class_id, rle if rle else s.rect(h, w, 1, 5, 1, 5), False))
        sizes[image] = (h, w)
        if photo:
            photo_sizes[image] = photo
    lines = s.write_imaterialist(root, WRITE_JPEG, rows, sizes, photo_sizes)
    if "bad0000000000000000000000truncjpg" in bad_ids:
        truncate(os.path.join(root, "train", "bad0000000000000000000000truncjpg.jpg"), 300)
    return root, lines


def line_of(lines, image):
    return next(k + 1 for k, line in enumerate(lines) if line.startswith(image))


def imat_messages(root, lines, image):
    csv = os.path.join(root, "train.csv")
    photo = os.path.join(root, "train", image + ".jpg")
    line = line_of(lines, image)
    return {
        "bad0000000000000000000000truncjpg": [photo, "Premature end of JPEG file"],
        "bad000000000000000000000000nojpeg": [photo + ": cannot open"],
        "bad0000000000000000000000rlerange": [
            f"{csv}:{line}: EncodedPixels: run 2 (start 895, length 10): it runs past the image "
            "end (900 pixels)"],
        "bad00000000000000000000sizediffer": [f"{csv}:{line}: Height x Width 40x40 but {photo} "
                                              "is 30x30"],
        "bad0000000000000000000unknownclass": [
            f"{csv}:{line}: unknown class id 46 (label_descriptions.json has 0..45)"],
    }[image]


def check_imat_items():
    for image in BAD_IMAT:
        root, lines = imat_layout(f"imat_{image[-8:]}", [image])
        expect_failure("imaterialist", root, image, imat_messages(root, lines, image))
    root, lines = imat_layout("imat_all_bad", list(BAD_IMAT))
    out = os.path.join(WORK, "imat_skip_bad.h5")
    result = ingest("imaterialist", root, out, "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert "2 annotated images" in result.stdout and "5 skipped" in result.stdout, result.stdout
    with t.open_h5(out, PLUGIN_DIR) as f:
        assert [i.decode() for i in f["ids"][()]] == sorted(GOOD_IMAT)
        skipped = f["skipped"][()]
        assert [i.decode() for i in skipped["id"]] == sorted(BAD_IMAT)
        for row in skipped:
            reason = row["reason"].decode()
            for message in imat_messages(root, lines, row["id"].decode()):
                assert message in reason, (reason, message)


def check_imat_files():
    """Broken train.csv or label_descriptions.json: fatal, --skip-bad or not."""
    root, lines = imat_layout("imat_files", [])
    csv = os.path.join(root, "train.csv")
    good_csv = "\n".join(lines) + "\n"
    cases = [
        (lines[0] + "\n" + lines[1] + "\n" + lines[2].replace(",30,20,", ',"30,20,', 1) + "\n",
         f"{csv}:4:", "the quoted field opened at line 3"),
        (good_csv + "x,1 2,30\n", f"{csv}:{len(lines) + 1}: 3 fields, the header has 5", ""),
        (good_csv.replace("ClassId", "Class"), f"{csv}:1: the header has no column ClassId", ""),
        (good_csv + 'x"y,1 2,30,20,1\n', f"{csv}:{len(lines) + 1}:2: quote inside an unquoted", ""),
    ]
    for k, (text, message, more) in enumerate(cases):
        with open(csv, "w") as f:
            f.write(text)
        expect_failure("imaterialist", root, f"csv_{k}", [message, more], "--skip-bad")
    with open(csv, "w") as f:
        f.write(good_csv)
    descriptions = os.path.join(root, "label_descriptions.json")
    with open(descriptions) as f:
        good = f.read()
    with open(descriptions, "w") as f:
        f.write(good.replace('"name": "sweater",', '"name": "sweater"', 1))
    expect_failure("imaterialist", root, "descriptions", [f"{descriptions}:", "expected ',' or '}'"],
                   "--skip-bad")
    with open(descriptions, "w") as f:
        doc = json.loads(good)
        doc["categories"][5]["id"] = 4
        json.dump(doc, f)
    expect_failure("imaterialist", root, "descriptions_id", ["categories[5]: id 4 appears twice"])
    with open(descriptions, "w") as f:
        f.write(good)
    partial = os.path.join(WORK, "imat_partial.map")
    with open(partial, "w") as m:
        m.write("0 background\n11 dress\n")  # the good images hold sleeves (source id 32) too
    expect_failure("imaterialist", root, "partial_map",
                   [f"{csv}:3: class id 31 (sleeve) is not in label map {partial}"],
                   "--labels", partial)
    background_dropped = os.path.join(WORK, "imat_background_drop.map")
    with open(background_dropped, "w") as m:
        m.write("0 drop\n11 dress\n32 drop\n")
    expect_failure("imaterialist", root, "background_drop",
                   ["source class 0 (background) must map to a class or ignore"],
                   "--labels", background_dropped)


# ---- DeepFashion2 ----

def df2_good():
    return {"000010": {"source": "shop", "pair_id": 1,
                       "item1": s.df2_item(1, [[2, 2, 20, 2, 20, 20, 2, 20]], [2, 2, 20, 20])},
            "000020": {"source": "user", "pair_id": 1,
                       "item1": s.df2_item(8, [[1, 1, 10, 1, 10, 25, 1, 25]], [1, 1, 10, 25]),
                       "item2": s.df2_item(2, [[5, 5, 15, 5, 15, 15]], [5, 5, 15, 15])}}


def df2_bad():
    odd = s.df2_item(8, [[1, 1, 10, 1, 10, 25, 1, 25], [3, 3, 8, 3, 8]], [1, 1, 10, 25])
    unknown = s.df2_item(1, [[1, 1, 10, 1, 10, 10]], [1, 1, 10, 10])
    unknown["category_id"] = 14
    renamed = s.df2_item(3, [[1, 1, 10, 1, 10, 10]], [1, 1, 10, 10])
    renamed["category_name"] = "short sleeve top"
    no_style = s.df2_item(3, [[1, 1, 10, 1, 10, 10]], [1, 1, 10, 10])
    del no_style["style"]
    good_item = s.df2_item(1, [[1, 1, 10, 1, 10, 10]], [1, 1, 10, 10])
    huge_box = s.df2_item(1, [[1, 1, 10, 1, 10, 10]], [1, 1, 1e300, 10])  # was stored as inf
    return {
        "100001": ({"source": "shop", "pair_id": 2, "item1": good_item}, "truncated",
                   ["image/100001.jpg", "Premature end of JPEG file"]),
        "100002": ({"source": "shop", "pair_id": 2, "item1": good_item}, "missing",
                   ["image/100002.jpg: cannot open"]),
        "100003": ({"source": "user", "pair_id": 2, "item1": good_item, "item2": odd}, "",
                   ["annos/100003.json:1:", "item2: segmentation polygon 1 has 5 coordinates, "
                    "an odd number"]),
        "100004": ({"source": "user", "pair_id": 2, "item1": unknown}, "",
                   ["annos/100004.json:1:", "item1: unknown class id 14 (DeepFashion2 has 1..13)"]),
        "100005": ('{"source": "user",\n "pair_id": 2,\n "item1": {"category_id": 1,,}}', "",
                   ["annos/100005.json:3:29: expected a member name in double quotes, found ','"]),
        "100006": ({"source": "user", "pair_id": 2, "item1": renamed}, "",
                   ["item1: category_name 'short sleeve top' does not match category_id 3 "
                    "('short sleeve outwear')"]),
        "100007": ({"source": "user", "pair_id": 2, "item1": no_style}, "",
                   ["item1: needs an integer 'style'"]),
        "100008": ({"source": "seller", "pair_id": 2, "item1": good_item}, "",
                   ["annos/100008.json: needs 'source': \"shop\" or \"user\""]),
        "100009": ({"source": "user", "pair_id": 2, "item1": huge_box}, "",
                   ["annos/100009.json:1:", "item1: bounding_box value 1e+300 is not a pixel "
                    "coordinate"]),
    }


def df2_layout(name, bad_names):
    root = os.path.join(WORK, name)
    annotations, sizes = df2_good(), {"000010": (24, 24), "000020": (30, 20)}
    bad = df2_bad()
    for n in bad_names:
        annotations[n] = bad[n][0]
        if bad[n][1] != "missing":
            sizes[n] = (24, 24)
    s.write_deepfashion2(root, WRITE_JPEG, annotations, sizes)
    if "100001" in bad_names:
        truncate(os.path.join(root, "image", "100001.jpg"), 300)
    return root


def check_df2():
    bad = df2_bad()
    for n, (_, _, messages) in bad.items():
        expect_failure("deepfashion2", df2_layout(f"df2_{n}", [n]), f"df2_{n}", messages)
    root = df2_layout("df2_all_bad", list(bad))
    out = os.path.join(WORK, "df2_skip_bad.h5")
    result = ingest("deepfashion2", root, out, "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert "2 annotated images" in result.stdout and f"{len(bad)} skipped" in result.stdout
    with t.open_h5(out, PLUGIN_DIR) as f:
        assert [i.decode() for i in f["ids"][()]] == ["000010", "000020"]
        assert f["items"].shape == (3,) and list(f["items"]["image"]) == [0, 1, 1]
        skipped = f["skipped"][()]
        assert [i.decode() for i in skipped["id"]] == list(bad)
        for row in skipped:
            reason = row["reason"].decode()
            for message in bad[row["id"].decode()][2]:
                assert message in reason, (reason, message)
    expect_failure("deepfashion2", os.path.join(WORK, "nowhere"), "df2_no_root",
                   ["nowhere/annos: cannot list"])
    # the dataset's ids are ASCII: a photo named otherwise stops the run, naming it
    root = os.path.join(WORK, "df2_non_ascii")
    annotations = df2_good()
    annotations["00003\u00e9"] = annotations["000010"]
    s.write_deepfashion2(root, WRITE_JPEG, annotations,
                         {"000010": (24, 24), "000020": (30, 20), "00003\u00e9": (24, 24)})
    expect_failure("deepfashion2", root, "df2_non_ascii",
                   ["id '00003\u00e9' has a byte 0xc3 that is not printable ASCII"])


def check_usage():
    out = os.path.join(WORK, "usage.h5")
    result = t.run([INGEST, "kaggle", "--root", WORK, "--out", out])
    assert result.returncode == 2
    assert "unknown source 'kaggle' (known: ccp, imaterialist, deepfashion2)" in result.stderr
    bogus = os.path.join(WORK, "bogus.map")
    with open(bogus, "w") as m:
        m.write("0 background\n3 !bogus\n")
    result = ingest("deepfashion2", df2_layout("df2_map", []), out, "--labels", bogus)
    assert result.returncode == 1 and f"{bogus}:2: unknown directive '!bogus'" in result.stderr, \
        result.stderr
    no_output_left(out)


def main():
    check_imat_items()
    check_imat_files()
    check_df2()
    check_usage()
    print("bad input handled")


main()
