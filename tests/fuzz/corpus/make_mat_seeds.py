"""Writes the .mat seeds of corpus/mat/ (MAT version 5, as CCP stores its files): python3
corpus/make_mat_seeds.py, from tests/fuzz/. Hand-made: scipy is not needed."""
import struct
import zlib

MI_INT8, MI_INT32, MI_UINT16, MI_UINT32, MI_DOUBLE, MI_UINT8 = 1, 5, 4, 6, 9, 2
MI_MATRIX, MI_COMPRESSED = 14, 15
CLASS_CELL, CLASS_CHAR, CLASS_DOUBLE, CLASS_UINT8 = 1, 4, 6, 9


def element(kind, data, e="<"):
    padding = b"\0" * (-len(data) % 8)
    return struct.pack(e + "II", kind, len(data)) + data + padding


def matrix(name, cls, dims, kind, values, e="<"):
    fmt = {MI_DOUBLE: "d", MI_UINT8: "B", MI_UINT16: "H"}[kind]
    body = element(MI_UINT32, struct.pack(e + "II", cls, 0), e)
    body += element(MI_INT32, struct.pack(e + "%di" % len(dims), *dims), e)
    body += element(MI_INT8, name.encode(), e)
    body += element(kind, struct.pack(e + "%d%s" % (len(values), fmt), *values), e)
    return element(MI_MATRIX, body, e)


def cell(name, strings, e="<"):
    body = element(MI_UINT32, struct.pack(e + "II", CLASS_CELL, 0), e)
    body += element(MI_INT32, struct.pack(e + "ii", 1, len(strings)), e)
    body += element(MI_INT8, name.encode(), e)
    for s in strings:
        body += matrix("", CLASS_CHAR, [1, len(s)], MI_UINT16, [ord(c) for c in s], e)
    return element(MI_MATRIX, body, e)


def header(e="<"):
    text = b"MATLAB 5.0 MAT-file, fuzz seed".ljust(116, b" ")
    return text + b"\0" * 8 + struct.pack(e + "H", 0x0100) + (b"IM" if e == "<" else b"MI")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


labels = matrix("groundtruth", CLASS_DOUBLE, [3, 4], MI_DOUBLE, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255])
tags = matrix("tags", CLASS_UINT8, [1, 5], MI_UINT8, [0, 1, 0, 1, 1])
names = cell("label_list", ["null", "bag", "dress"])
write("corpus/mat/ccp.mat", header() + labels + tags + names)
write("corpus/mat/compressed.mat", header() + element(MI_COMPRESSED, zlib.compress(labels + names)))
write("corpus/mat/big_endian.mat",
      header(">") + matrix("groundtruth", CLASS_DOUBLE, [2, 2], MI_DOUBLE, [1, 2, 3, 4], ">"))
write("corpus/mat/not_0_255.mat", header() + matrix("groundtruth", CLASS_DOUBLE, [1, 2], MI_DOUBLE, [0.5, 300]))
write("corpus/mat/truncated.mat", (header() + labels)[:-20])
