"""ingest on the synthetic CCP-layout fixture: every dataset, dtype, shape and
attribute of docs/dataset.md, images and masks compared pixel by pixel with an
independent numpy resize of the known synthetic content, tag-only file, label
maps (also !exclude and drop on CCP's dense labels), deterministic split.
Usage: ingest_synthetic.py INGEST MAKE_FIXTURE PLUGIN_DIR WORK_DIR"""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_testlib as t  # noqa: E402

INGEST, MAKE_FIXTURE, PLUGIN_DIR, WORK = sys.argv[1:5]
H, W = 64, 96


def ingest(root, out, *extra):
    result = t.run([INGEST, "ccp", "--root", root, "--out", out, "--height", str(H),
                    "--width", str(W), *extra])
    assert result.returncode == 0, result.stderr
    return result


def check_schema(f, n, k, has_masks):
    expected = {"images": ((n, H, W, 3), "uint8"), "tags": ((n, k), "uint8"),
                "ids": ((n,), "S64"), "source_size": ((n, 2), "int32"),
                "letterbox": ((n, 5), "float32"), "split": ((n,), "uint8")}
    if has_masks:
        expected["masks"] = ((n, H, W), "uint8")
    for name, (shape, dtype) in expected.items():
        assert f[name].shape == shape, (name, f[name].shape, shape)
        assert f[name].dtype == np.dtype(dtype), (name, f[name].dtype, dtype)
    assert ("masks" in f) == has_masks
    assert f["images"].chunks == (1, H, W, 3)
    if has_masks:
        assert f["masks"].chunks == (1, H, W)
        assert f["masks"].id.get_create_plist().get_filter(0)[0] == 32015
    assert f["skipped"].shape == (0,)
    a = f.attrs
    assert (a["height"], a["width"], a["num_classes"], a["schema_version"]) == (H, W, k, 1)
    assert a["source"] == "ccp" and a["tool_version"].startswith("fashion_parse ingest")
    assert set(np.unique(f["split"][()])) <= {0, 1, 2}


def check_item(f, i, k, has_masks):
    h, w = (int(v) for v in f["source_size"][i])
    assert (h, w) == t.FIXTURE_SIZES[k], (i, h, w)
    scale, oy, ox, rh, rw = t.letterbox(h, w, H, W)
    np.testing.assert_allclose(f["letterbox"][i], [scale, oy, ox, rh, rw], rtol=1e-6)
    labels = t.fixture_labels(h, w)
    photo = t.FIXTURE_COLOURS[labels]
    expected_image = t.resize_bilinear(photo, H, W)
    image = f["images"][i].astype(np.float64)
    diff = np.abs(image - expected_image)
    # JPEG (q95, 4:4:4) of flat blocks: small errors, a little ringing at block edges.
    assert diff.mean() < 1.0 and diff.max() <= 20, (i, diff.mean(), diff.max())
    outside = np.ones((H, W), bool)
    outside[oy:oy + rh, ox:ox + rw] = False
    assert (f["images"][i][outside] == 0).all(), "padding of the photo is not 0"
    if has_masks:
        np.testing.assert_array_equal(f["masks"][i], t.resize_nearest(labels, H, W))
        tags = np.zeros(len(t.FIXTURE_CLASSES), np.uint8)
        tags[np.unique(labels)] = 1
        np.testing.assert_array_equal(f["tags"][i], tags)


def write_map(name, skin, bag):
    path = os.path.join(WORK, name)
    with open(path, "w") as m:
        m.write(f"0 background\n1 shirt\n2 pants\n3 hair\n4 {skin}\n5 {bag}\n")
    return path


def check_directives(root):
    """!exclude and drop on CCP's dense masks and tags."""
    tags_root = os.path.join(WORK, "synthetic_ccp_tags_only")
    shutil.rmtree(tags_root, ignore_errors=True)
    os.makedirs(os.path.join(tags_root, "annotations"))
    for part in ("photos", "annotations/image-level", "label_list.mat"):
        os.symlink(os.path.join(root, part), os.path.join(tags_root, part))
    skin_out = write_map("no_skin.map", "!exclude", "bag")  # 1006's tags hold skin (4)
    out = os.path.join(WORK, "no_skin.h5")
    result = t.run([INGEST, "ccp", "--root", tags_root, "--out", out, "--labels", skin_out])
    assert result.returncode == 0, result.stderr
    assert "2 tag-only images" in result.stdout and "1 excluded" in result.stdout, result.stdout
    assert not os.path.exists(out), "a source without annotated photos writes no FILE.h5"
    with t.open_h5(os.path.join(WORK, "no_skin_tags.h5"), PLUGIN_DIR) as f:
        assert [i.decode() for i in f["ids"][()]] == ["1005", "1007"]
    # Every annotated photo holds class 5: nothing is left, which is an error.
    result = t.run([INGEST, "ccp", "--root", root, "--out", out, "--labels",
                    write_map("no_bag.map", "skin", "!exclude")])
    assert result.returncode == 1, result.stderr
    assert "none of the 6 annotated items was written (0 bad, 6 excluded)" in result.stderr
    assert not os.path.exists(out) and not glob.glob(out + ".tmp*")
    drop_map = write_map("drop_bag.map", "skin", "drop")
    result = t.run([INGEST, "ccp", "--root", root, "--out", out, "--labels", drop_map])
    assert result.returncode == 1, result.stderr
    assert f"pixel-level/0001.mat: class id 5 is 'drop' in label map {drop_map}" in result.stderr


def check_all_or_nothing(root):
    """A bad tag-only file (here cut short) fails the run after FILE.h5 is complete: neither
    FILE.h5 nor FILE_tags.h5 nor a temporary is left. Of two runs writing the same --out at
    once, one writes it and one stops at once naming the other (OUT.lock); the temporaries of
    runs killed before their rename are removed."""
    bad_root = os.path.join(WORK, "synthetic_ccp_bad_tags")
    shutil.rmtree(bad_root, ignore_errors=True)
    os.makedirs(os.path.join(bad_root, "annotations", "image-level"))
    for part in ("photos", "annotations/pixel-level", "label_list.mat"):
        os.symlink(os.path.join(root, part), os.path.join(bad_root, part))
    for name in os.listdir(os.path.join(root, "annotations", "image-level")):
        data = open(os.path.join(root, "annotations", "image-level", name), "rb").read()
        with open(os.path.join(bad_root, "annotations", "image-level", name), "wb") as f:
            f.write(data[:len(data) // 2] if name == "1006.mat" else data)
    out = os.path.join(WORK, "all_or_nothing.h5")
    result = t.run([INGEST, "ccp", "--root", bad_root, "--out", out, "--height", str(H),
                    "--width", str(W)])
    assert result.returncode == 1 and "1006.mat: truncated" in result.stderr, result.stderr
    left = [p for p in (out, out[:-3] + "_tags.h5") if os.path.exists(p)]
    left += glob.glob(out + ".tmp*") + glob.glob(out[:-3] + "_tags.h5.tmp*")
    assert not left, f"left behind after a failed tag-only set: {left}"
    twice = os.path.join(WORK, "twice.h5")
    for stale in (twice + ".tmp.999999", twice[:-3] + "_tags.h5.tmp.999998"):
        open(stale, "w").close()  # what runs killed before their rename leave
    cmd = [INGEST, "ccp", "--root", root, "--out", twice, "--height", str(H), "--width", str(W)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(r.wait(), r.stdout.read() + r.stderr.read()) for r in runs]
    assert any(code == 0 for code, _ in results), results
    for code, text in results:  # a run that overlapped the other stops at once, touching nothing
        assert code == 0 or (code == 1 and f"the output {twice} is in use by another ingest"
                             in text), results
    assert os.path.exists(twice) and not glob.glob(twice[:-3] + "*.tmp*"), os.listdir(WORK)
    assert any("ingest: removed 2 temporary files" in text for _, text in results), results


def main():
    root = os.path.join(WORK, "synthetic_ccp")
    shutil.rmtree(root, ignore_errors=True)
    assert t.run([MAKE_FIXTURE, root, "good"]).returncode == 0
    out = os.path.join(WORK, "synthetic.h5")
    result = ingest(root, out, "--seed", "7")
    assert "6 annotated images" in result.stdout and "3 tag-only images" in result.stdout
    with t.open_h5(out, PLUGIN_DIR) as f:
        check_schema(f, 6, 6, True)
        assert list(f.attrs["class_names"]) == t.FIXTURE_CLASSES
        assert f.attrs["label_map"] == "ccp59" and f.attrs["split_seed"] == 7
        assert [s.decode() for s in f["ids"][()]] == [f"{i:04d}" for i in range(1, 7)]
        for i in range(6):
            check_item(f, i, i, True)
        split = f["split"][()]
    with t.open_h5(os.path.join(WORK, "synthetic_tags.h5"), PLUGIN_DIR) as f:
        check_schema(f, 3, 6, False)
        assert [s.decode() for s in f["ids"][()]] == ["1005", "1006", "1007"]
        for i in range(3):
            check_item(f, i, i, False)
            tags = np.zeros(6, np.uint8)
            tags[[0, 1 + i, 3 + i % 3]] = 1
            np.testing.assert_array_equal(f["tags"][i], tags)

    again = os.path.join(WORK, "synthetic_again.h5")
    ingest(root, again, "--seed", "7")
    with open(out, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read(), "two runs with the same input differ"

    # A label map file given by path: folds classes and ignores 'bag'.
    map_path = os.path.join(WORK, "fold.map")
    with open(map_path, "w") as m:
        m.write("# test map\n0 background\n1 clothes  # shirt\n2 clothes\n3 hair\n4 skin\n"
                "5 ignore   # bag\n")
    folded = os.path.join(WORK, "folded.h5")
    ingest(root, folded, "--labels", map_path, "--limit", "2")
    lut = np.array([0, 1, 1, 2, 3, 255] + [0] * 250, np.uint8)
    with t.open_h5(folded, PLUGIN_DIR) as f:
        assert list(f.attrs["class_names"]) == ["background", "clothes", "hair", "skin"]
        assert f.attrs["label_map"] == "fold" and f["images"].shape[0] == 2
        for i in range(2):
            h, w = t.FIXTURE_SIZES[i]
            np.testing.assert_array_equal(f["masks"][i],
                                          t.resize_nearest(lut[t.fixture_labels(h, w)], H, W))
            np.testing.assert_array_equal(f["tags"][i], [1, 1, 1, 1])
    with t.open_h5(os.path.join(WORK, "folded_tags.h5"), PLUGIN_DIR) as f:
        assert f["images"].shape[0] == 2, "--limit applies to the tag-only photos too"
    check_directives(root)
    check_all_or_nothing(root)
    print("synthetic ingest ok, split", split.tolist())


main()
