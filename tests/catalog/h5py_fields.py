"""(c) Stock h5py with PyPI's hdf5plugin reads every field of the master file,
and each is checked against a recomputation in numpy.

Run 1 parses the ingested HDF5 catalog (24 CCP photos letterboxed to 64x64, so
the photos' pixels are at hand) with a category prior, source-size masks and
--preview 3; every dataset and attribute of its master is recomputed from the
masks, the stored photos and the tables. Run 2 parses the JPEGs of the same 24
photos (2 ranks) and is checked the same way against the letterboxed photos
parse_catalog computes from them (catalog_images). parse_catalog letterboxes a
JPEG into the same box as ingest (from the photo's own size) but decodes it at
a reduced DCT scale (1/8 here, where ingest decodes at full size), so run 2's
ids, source_size, letterbox and product_type must equal run 1's, its
letterboxed photos must be close to the ingested ones (closer than a one-pixel
shift of them), and its masks are only reported against run 1's (this
1-epoch model is far more sensitive to its input than a trained one:
results/jpeg_dct_scaling.md). h5dump reads the masks through our plugin
(HDF5_PLUGIN_PATH).
Usage: h5py_fields.py BUILD_DIR WORK_DIR   (exit 77 without CCP)"""
import math
import os
import re
import subprocess

import numpy as np

import catalog_lib as lib

PRODUCT_TYPES = ["skirt", "dress", "pants", "", "no-such-type"]  # "" = not in the CSV


def srgb_to_linear(v):
    v = np.asarray(v, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v):
    return 255.0 * np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def linear_to_lab(rgb):
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = m @ np.asarray(rgb, np.float64) / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(lab1, lab2):
    """Transcribed from Sharma, Wu and Dalal (2005), independently of colour.c."""
    L1, a1, b1 = lab1
    L2, a2, b2 = lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if (a1p or b1) else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if (a2p or b2) else 0.0
    dLp, dCp = L2 - L1, c2p - c1p
    if c1p * c2p == 0:
        dhp = 0.0
    elif abs(h2p - h1p) <= 180:
        dhp = h2p - h1p
    elif h2p - h1p > 180:
        dhp = h2p - h1p - 360
    else:
        dhp = h2p - h1p + 360
    dHp = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dhp / 2))
    Lp, Cp = (L1 + L2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        hp = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hp = (h1p + h2p) / 2
    elif h1p + h2p < 360:
        hp = (h1p + h2p + 360) / 2
    else:
        hp = (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(hp - 30)) + 0.24 * math.cos(math.radians(2 * hp))
         + 0.32 * math.cos(math.radians(3 * hp + 6)) - 0.20 * math.cos(math.radians(4 * hp - 63)))
    d_theta = 30 * math.exp(-((hp - 275) / 25) ** 2)
    rc = 2 * math.sqrt(Cp ** 7 / (Cp ** 7 + 25 ** 7))
    sl = 1 + 0.015 * (Lp - 50) ** 2 / math.sqrt(20 + (Lp - 50) ** 2)
    sc, sh = 1 + 0.045 * Cp, 1 + 0.015 * Cp * t
    rt = -math.sin(math.radians(2 * d_theta)) * rc
    return math.sqrt((dLp / sl) ** 2 + (dCp / sc) ** 2 + (dHp / sh) ** 2
                     + rt * (dCp / sc) * (dHp / sh))


def check_ciede2000():
    # Pairs 1, 7 and 17 of Sharma et al.'s test data.
    pairs = [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
             ((50, 0, 0), (50, -1, 2), 2.3669),
             ((50, 2.5, 0), (73, 25, -18), 27.1492)]
    for a, b, expected in pairs:
        assert abs(ciede2000(a, b) - expected) < 1e-4, (a, b, ciede2000(a, b))


def voc_colours(k):
    colours = np.zeros((k, 3), np.uint8)
    for i in range(k):
        c, r, g, b = i, 0, 0, 0
        for bit in range(7, -1, -1):
            r |= (c & 1) << bit
            g |= (c >> 1 & 1) << bit
            b |= (c >> 2 & 1) << bit
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def read_prior(path, class_names):
    rules = {}
    for line in open(path):
        line = line.split("#")[0].strip()
        if not line:
            continue
        product, rest = (s.strip() for s in line.split(":", 1))
        verb, *names = rest.replace(",", " ").split()
        listed = np.array([n in names for n in class_names])
        rules[product] = listed if verb == "allow" else ~listed
    return rules


DATASETS = {"ids", "catalog_index", "content_hash", "source_size", "letterbox", "product_type",
            "reused", "masks", "masks_source", "pixel_fraction", "bbox", "mean_confidence",
            "mean_rgb", "mean_lab", "colour", "failed", "shard_table", "palette/names",
            "palette/srgb", "palette/lab", "class_colours", "totals/image_count",
            "totals/pixel_count", "totals/fraction_sum"}
ATTRIBUTES = {"class_names", "num_classes", "height", "width", "arch", "checkpoint",
              "checkpoint_hash", "result_fingerprint", "job_id", "job_config", "catalog",
              "prior_table", "prior_csv", "previous_run", "created", "images", "failed", "new",
              "changed", "unchanged", "removed", "reused", "source_masks", "source_height",
              "source_width", "zstd_level", "tool_version", "presence_probability"}


def check_virtual_layout(f, path, n):
    """The virtual datasets: one mapping per shard, tiling the rows exactly once."""
    shards = f["shard_table"][()]
    assert f["masks"].is_virtual and f["pixel_fraction"].is_virtual
    covered = np.zeros(n, int)
    for s in shards:
        covered[s["first_row"]:s["first_row"] + s["rows"]] += 1
        assert os.path.exists(os.path.join(os.path.dirname(path), s["file"].decode()))
    assert np.all(covered == 1), f"the shards cover rows {covered}"
    sources = {m.file_name for m in f["masks"].virtual_sources()}
    assert sources == {s["file"].decode() for s in shards if s["rows"]}, sources


def check_identity(f, images, source, csv_types, jpeg_paths):
    """ids, catalog rows, sizes, product types and content hashes; returns (ids, types)."""
    n = len(images)
    ids = [i.decode() for i in f["ids"][()]]
    assert ids == [i.decode() for i in source["ids"][()]], "ids differ from the catalog"
    assert np.array_equal(f["catalog_index"][()], np.arange(n))
    assert np.array_equal(f["source_size"][()], source["source_size"][()])
    assert np.array_equal(f["letterbox"][()], source["letterbox"][()])
    assert not f["reused"][()].any()
    types = [t.decode() for t in f["product_type"][()]]
    assert types == [csv_types.get(i, "") for i in ids], types
    hashes = f["content_hash"][()]
    expected_hashes = [lib.fnv1a64(open(p, "rb").read()) for p in jpeg_paths] if jpeg_paths \
        else [lib.fnv1a64(images[i].tobytes()) for i in range(n)]
    assert [int(h) for h in hashes] == expected_hashes, "content_hash is not FNV-1a 64"
    assert len(f["failed"]) == 0 and f["failed"].dtype.names == (
        "id", "content_hash", "catalog_index", "reason")
    return ids, types


def check_statistics(f, images, masks, ids, types, prior_rules, k):
    """Per image and class: pixel fractions, boxes, confidence, colours, source-size masks;
    and the totals over the catalog."""
    height, width = masks.shape[1:]
    fraction, bbox = f["pixel_fraction"][()], f["bbox"][()]
    confidence, rgb = f["mean_confidence"][()], f["mean_rgb"][()]
    lab, colour = f["mean_lab"][()], f["colour"][()]
    palette_lab = f["palette/lab"][()].astype(np.float64)
    palette_srgb = f["palette/srgb"][()]
    palette_names = [p.decode() for p in f["palette/names"][()]]
    assert len(palette_names) == 16 and len(set(palette_names)) == 16
    for p in range(16):
        assert np.allclose(palette_lab[p], linear_to_lab(srgb_to_linear(palette_srgb[p])),
                           atol=1e-3)
    source_masks = f["masks_source"][()]
    totals = {name: np.zeros(k) for name in ("image_count", "pixel_count", "fraction_sum")}
    for i in range(len(images)):
        _, oy, ox, rh, rw = (int(round(v)) if j else v for j, v in
                             enumerate(f["letterbox"][i]))
        inside = np.zeros((height, width), bool)
        inside[oy:oy + rh, ox:ox + rw] = True
        mask = masks[i]
        assert np.all(mask[~inside] == 255) and np.all(mask[inside] < k)
        counts = np.bincount(mask[inside], minlength=k)
        assert np.allclose(fraction[i], counts / (rh * rw), atol=1e-7)
        assert abs(fraction[i].sum() - 1) < 1e-5, fraction[i].sum()
        rule = prior_rules.get(types[i])
        if rule is not None:
            assert not counts[~rule].any(), f"{ids[i]}: a class the prior forbids is present"
        linear = srgb_to_linear(images[i])
        for c in range(k):
            if counts[c] == 0:
                assert np.all(bbox[i, c] == -1) and colour[i, c] == 255
                assert np.isnan(confidence[i, c]) and np.isnan(rgb[i, c]).all()
                assert np.isnan(lab[i, c]).all()
                continue
            ys, xs = np.nonzero(mask == c)
            assert list(bbox[i, c]) == [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
            allowed = rule.sum() if rule is not None else k
            assert 1.0 / allowed - 1e-6 <= confidence[i, c] <= 1 + 1e-6
            mean_linear = linear[mask == c].mean(axis=0)
            assert np.allclose(rgb[i, c], linear_to_srgb(mean_linear), atol=2e-3)
            expected_lab = linear_to_lab(mean_linear)
            assert np.allclose(lab[i, c], expected_lab, atol=2e-3), (lab[i, c], expected_lab)
            distances = [ciede2000(expected_lab, palette_lab[p]) for p in range(16)]
            assert distances[colour[i, c]] <= min(distances) + 1e-6, (ids[i], c)
            totals["pixel_count"][c] += counts[c]
        totals["image_count"] += counts > 0
        totals["fraction_sum"] += fraction[i]
        sh, sw = f["source_size"][i]
        ys = oy + np.floor((np.arange(sh) + 0.5) * rh / sh).astype(int)
        xs = ox + np.floor((np.arange(sw) + 0.5) * rw / sw).astype(int)
        assert np.array_equal(source_masks[i, :sh, :sw], mask[ys][:, xs])
        assert np.all(source_masks[i, sh:] == 255) and np.all(source_masks[i, :, sw:] == 255)
    for name, expected in totals.items():
        assert np.allclose(f["totals/" + name][()], expected), name
    assert np.array_equal(f["class_colours"][()], voc_colours(k))


def check_attributes(h5py, f, path, n):
    """The master's attributes, and the shards' zstd filter and chunking."""
    a = f.attrs
    assert a["images"] == n and a["failed"] == 0 and a["new"] == n and a["reused"] == 0
    assert a["changed"] == a["unchanged"] == a["removed"] == 0
    assert a["source_masks"] == 1 and a["source_height"] == a["source_width"] == 1024
    assert a["arch"] == "r18" and a["zstd_level"] == 3 and a["checkpoint_hash"] != 0
    assert a["result_fingerprint"] != 0 and a["checkpoint"].endswith("last.h5")
    assert a["job_id"] == os.path.basename(os.path.dirname(path)) and a["previous_run"] == ""
    assert a["catalog"] and a["prior_csv"].endswith("types.csv")
    assert a["tool_version"].startswith("fashion_parse parse_catalog")
    assert "absent" in a["presence_probability"] and "presence_probability" not in f
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["created"]), a["created"]
    assert "[catalog]" in a["job_config"] and a["prior_table"].endswith("ccp59.prior")
    filters = f["masks"].virtual_sources()[0]
    with h5py.File(os.path.join(os.path.dirname(path), filters.file_name), "r") as shard:
        plist = shard["masks"].id.get_create_plist()
        assert plist.get_filter(0)[0] == 32015 and shard["masks"].chunks == (1, 64, 64)


def check_master(h5py, path, images, source, csv_types, prior_rules, jpeg_paths=None):
    """Every dataset and attribute of one master file against a recomputation."""
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda name, item: names.append(name)
                     if isinstance(item, h5py.Dataset) else None)
        assert set(names) == DATASETS, set(names) ^ DATASETS
        assert set(f.attrs) == ATTRIBUTES, set(f.attrs) ^ ATTRIBUTES
        class_names = [c.decode() if isinstance(c, bytes) else c for c in f.attrs["class_names"]]
        k = len(class_names)
        assert k == f.attrs["num_classes"] == 59 and f.attrs["height"] == f.attrs["width"] == 64
        masks = f["masks"][()]
        check_virtual_layout(f, path, len(images))
        ids, types = check_identity(f, images, source, csv_types, jpeg_paths)
        check_statistics(f, images, masks, ids, types, prior_rules, k)
        check_attributes(h5py, f, path, len(images))
        return masks, class_names


def catalog_images(paths, source, shape):
    """The letterboxed photos parse_catalog computes from `source`, [N, H, W, 3] uint8."""
    out = os.path.join(paths.work, "h5py", "catalog_images.bin")
    result = subprocess.run([os.path.join(paths.build, "tests", "catalog", "catalog_images"),
                             source, str(shape[1]), str(shape[2]), out],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    return np.fromfile(out, np.uint8).reshape(shape)


def compare_letterboxed(ingested, parsed, letterbox):
    """The JPEG path's letterboxed photos against ingest's: the same padding, the same mean
    colour, and pixels well closer than either photo is to the other shifted by one pixel (at
    1/8 the scaled decode differs by 5-13 in 0..255, a one-pixel shift by 14-30)."""
    for i, (_, oy, ox, rh, rw) in enumerate(letterbox.astype(int)):
        inside = np.zeros(ingested.shape[1:3], bool)
        inside[oy:oy + rh, ox:ox + rw] = True
        assert not ingested[i][~inside].any() and not parsed[i][~inside].any(), \
            f"image {i}: the padding is not 0"
        a = ingested[i, oy:oy + rh, ox:ox + rw].astype(int)
        b = parsed[i, oy:oy + rh, ox:ox + rw].astype(int)
        difference = np.abs(a - b).mean()
        shifted = min(np.abs(a[1:] - b[:-1]).mean(), np.abs(a[:-1] - b[1:]).mean(),
                      np.abs(a[:, 1:] - b[:, :-1]).mean(), np.abs(a[:, :-1] - b[:, 1:]).mean())
        colour_shift = np.abs(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0)).max()
        assert difference < 0.7 * shifted and colour_shift < 3, (i, difference, shifted,
                                                                 colour_shift)


def main():
    paths = lib.Paths()
    paths.require_fixture()
    check_ciede2000()
    work = paths.fresh("h5py")
    h5py = lib.h5()
    with h5py.File(paths.dataset, "r") as source:
        ids = [i.decode() for i in source["ids"][()]]
    csv_types = {image: PRODUCT_TYPES[i % 5] for i, image in enumerate(ids)
                 if PRODUCT_TYPES[i % 5]}
    csv = os.path.join(work, "types.csv")
    with open(csv, "w") as f:
        f.write("id,product_type\n" + "".join(f"{i},{t}\n" for i, t in csv_types.items()))
    table = os.path.join(lib.REPO, "jobs", "category_prior", "ccp59.prior")
    options = dict(output_source_masks="true", prior_table=table, prior_csv=csv)

    out1 = os.path.join(work, "hdf5")
    job1 = lib.write_job(os.path.join(work, "hdf5.ini"), paths.dataset, paths.checkpoint, out1,
                         **options)
    lib.run(paths, job1, 0, "--preview", "3")
    jpegs = [os.path.join(paths.ccp, "photos", f"{i}.jpg") for i in ids]
    photo_list = os.path.join(work, "photos.txt")
    with open(photo_list, "w") as f:
        f.write("".join(p + "\n" for p in jpegs))
    out2 = os.path.join(work, "jpeg")
    job2 = lib.write_job(os.path.join(work, "jpeg.ini"), photo_list, paths.checkpoint, out2,
                         **options)
    lib.run(paths, job2, 2)

    with h5py.File(paths.dataset, "r") as source:
        images = source["images"][()]
        with h5py.File(paths.checkpoint, "r") as checkpoint:
            names = [c.decode() if isinstance(c, bytes) else c
                     for c in checkpoint.attrs["class_names"]]
        rules = read_prior(table, names)
        masks, class_names = check_master(h5py, os.path.join(out1, "master.h5"), images, source,
                                          csv_types, rules)
        assert class_names == names
        jpeg_images = catalog_images(paths, photo_list, images.shape)
        compare_letterboxed(images, jpeg_images, source["letterbox"][()])
        check_master(h5py, os.path.join(out2, "master.h5"), jpeg_images, source, csv_types,
                     rules, jpeg_paths=jpegs)
    first, _ = lib.read_results(os.path.join(out1, "master.h5"))
    second, _ = lib.read_results(os.path.join(out2, "master.h5"))
    fields = ["source_size", "letterbox", "product_type"]
    assert not lib.same_results(first, second, fields), lib.same_results(first, second, fields)
    same = sum(int(((first[i]["masks"] == second[i]["masks"]) & (first[i]["masks"] != 255)).sum())
               for i in ids)
    photo_pixels = sum(int((first[i]["masks"] != 255).sum()) for i in ids)
    print(f"JPEG catalog against its ingested copy: {same / photo_pixels:.1%} of the mask pixels "
          "agree (DCT-scaled against full decode)")

    dump = os.path.join(work, "masks.bin")
    result = subprocess.run(["h5dump", "-d", "/masks", "-s", "2,0,0", "-c", "1,64,64", "-b", "LE",
                             "-o", dump, os.path.join(out1, "master.h5")],
                            env=dict(os.environ, HDF5_PLUGIN_PATH=paths.plugins),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    assert np.array_equal(np.fromfile(dump, np.uint8).reshape(64, 64), masks[2])

    previews = sorted(os.listdir(os.path.join(out1, "preview")))
    assert len(previews) == 4 and "contact_sheet.png" in previews, previews
    for name in previews:
        with open(os.path.join(out1, "preview", name), "rb") as f:
            header = f.read(24)
        assert header[:8] == b"\x89PNG\r\n\x1a\n", name
        png_width, png_height = np.frombuffer(header[16:24], ">u4")
        assert png_width >= 128 and png_height >= 64, (name, png_width, png_height)
    print(f"every field of both masters checked against numpy ({len(ids)} images, 59 classes)")


main()
