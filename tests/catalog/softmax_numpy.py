"""The backend's softmax_channels (written by test_softmax) against numpy in float64.
Usage: softmax_numpy.py TEST_SOFTMAX WORK_DIR"""
import glob
import os
import subprocess
import sys

import numpy as np


def main():
    program, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    subprocess.run([program, work], check=True)
    cases = sorted(glob.glob(os.path.join(work, "softmax_*.bin")))
    assert len(cases) == 3, cases
    for path in cases:
        raw = np.fromfile(path, dtype=np.uint8)
        n, c, h, w = np.frombuffer(raw[:16].tobytes(), dtype=np.int32)
        values = np.frombuffer(raw[16:].tobytes(), dtype=np.float32)
        count = n * c * h * w
        logits = values[:count].reshape(n, c, h, w).astype(np.float64)
        ours = values[count:].reshape(n, c, h, w).astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        error = np.abs(ours - expected).max()
        assert error < 2e-6, f"{path}: max |ours - numpy| = {error}"
        assert np.all(ours[0, 1] == 0) or ours[0, 1].max() < 1e-30, \
            f"{path}: a channel at -inf has probability {ours[0, 1].max()}"
        assert np.abs(ours.sum(axis=1) - 1).max() < 2e-6
        print(f"{os.path.basename(path)}: {n}x{c}x{h}x{w}, max error {error:.2e}")


main()
