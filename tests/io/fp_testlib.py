"""Shared helpers of the io tests: an independent reference for the letterbox
resize, a minimal MATLAB v5 reader and the synthetic fixture's tables.
Import after setting HDF5_PLUGIN_PATH (see open_h5)."""
import os
import struct
import subprocess
import zlib

import numpy as np

# Keep in step with make_ccp_fixture.c.
FIXTURE_SIZES = [(60, 40), (45, 70), (64, 64), (80, 30), (50, 50), (33, 47), (90, 60)]
FIXTURE_COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40],
                            [40, 200, 200], [200, 40, 200]], dtype=np.float64)
FIXTURE_CLASSES = ["null", "shirt", "pants", "hair", "skin", "bag"]


def fixture_labels(h, w):
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return ((3 * y // h) * 2 + (2 * x // w)).astype(np.uint8)


def open_h5(path, plugin_dir):
    """h5py reads our zstd masks through our own plugin library."""
    os.environ["HDF5_PLUGIN_PATH"] = plugin_dir
    import h5py
    return h5py.File(path, "r")


def letterbox(h, w, out_h, out_w):
    scale = min(out_h / h, out_w / w)
    rh = min(max(int(np.floor(h * scale + 0.5)), 1), out_h)
    rw = min(max(int(np.floor(w * scale + 0.5)), 1), out_w)
    return scale, (out_h - rh) // 2, (out_w - rw) // 2, rh, rw


def resize_nearest(labels, out_h, out_w):
    h, w = labels.shape
    _, oy, ox, rh, rw = letterbox(h, w, out_h, out_w)
    ys = np.minimum(np.floor((np.arange(rh) + 0.5) * h / rh).astype(int), h - 1)
    xs = np.minimum(np.floor((np.arange(rw) + 0.5) * w / rw).astype(int), w - 1)
    out = np.full((out_h, out_w), 255, np.uint8)
    out[oy:oy + rh, ox:ox + rw] = labels[ys][:, xs]
    return out


def resize_bilinear(photo, out_h, out_w):
    """align_corners=False bilinear into the letterbox, padding 0; float result."""
    h, w, _ = photo.shape
    _, oy, ox, rh, rw = letterbox(h, w, out_h, out_w)
    sy = np.clip((np.arange(rh) + 0.5) * h / rh - 0.5, 0, h - 1)
    sx = np.clip((np.arange(rw) + 0.5) * w / rw - 0.5, 0, w - 1)
    y0, x0 = sy.astype(int), sx.astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (sy - y0)[:, None, None], (sx - x0)[None, :, None]
    p = photo.astype(np.float64)
    top = p[y0][:, x0] + wx * (p[y0][:, x1] - p[y0][:, x0])
    bottom = p[y1][:, x0] + wx * (p[y1][:, x1] - p[y1][:, x0])
    out = np.zeros((out_h, out_w, 3))
    out[oy:oy + rh, ox:ox + rw] = top + wy * (bottom - top)
    return out


_MAT_TYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8",
              12: "<i8", 13: "<u8"}


def _elements(data):
    pos = 0
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<II", data, pos)
        if kind >> 16:  # small element: 4 bytes of data inside the tag
            kind, size = kind & 0xFFFF, kind >> 16
            yield kind, data[pos + 4:pos + 4 + size]
            pos += 8
        else:
            yield kind, data[pos + 8:pos + 8 + size]
            pos += 8 + size + (-size % 8)


def read_mat_matrix(path, name):
    """A 2-D numeric variable of a MATLAB v5 file, as MATLAB sees it (rows x cols)."""
    with open(path, "rb") as f:
        data = f.read()[128:]
    for kind, payload in _elements(data):
        if kind == 15:
            kind, payload = next(_elements(zlib.decompress(payload)))
        if kind != 14:
            continue
        parts = list(_elements(payload))
        dims = np.frombuffer(parts[1][1], "<i4")
        if parts[2][1].decode() != name:
            continue
        values = np.frombuffer(parts[3][1], _MAT_TYPES[parts[3][0]])
        return values.reshape(tuple(dims), order="F")
    raise KeyError(f"{path}: no variable {name}")


def run(command, **kwargs):
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300, **kwargs)
