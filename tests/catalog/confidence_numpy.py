"""The backend's argmax_channels and its confidence output (written by test_confidence)
against numpy in float64: the prediction is the first largest logit, and the confidence the
softmax probability of that class to within 2e-6 (float32 arithmetic over at most 59 terms, each
at most 1, relative to a value in (0, 1]); a channel at -inf takes no part.
Usage: confidence_numpy.py TEST_CONFIDENCE WORK_DIR"""
import glob
import os
import subprocess
import sys

import numpy as np


def main():
    program, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    for old in glob.glob(os.path.join(work, "confidence_*.bin")):
        os.remove(old)
    subprocess.run([program, work], check=True)
    cases = sorted(glob.glob(os.path.join(work, "confidence_*.bin")))
    assert len(cases) >= 4, cases
    for path in cases:
        raw = np.fromfile(path, dtype=np.uint8)
        n, c, h, w, bf16 = np.frombuffer(raw[:20].tobytes(), dtype=np.int32)
        count, pixels = n * c * h * w, n * h * w
        body = raw[20:]
        logits = np.frombuffer(body[:4 * count].tobytes(), dtype=np.float32)
        logits = logits.reshape(n, c, h, w).astype(np.float64)
        predictions = body[4 * count:4 * count + pixels].reshape(n, h, w)
        confidence = np.frombuffer(body[4 * count + pixels:].tobytes(), dtype=np.float32)
        confidence = confidence.reshape(n, h, w).astype(np.float64)
        assert np.array_equal(predictions, logits.argmax(axis=1)), f"{path}: argmax differs"
        assert predictions[0, 0, 0] == 0, f"{path}: a tie must go to the first class"
        assert not np.any(predictions[0] == 1), f"{path}: a channel at -inf was predicted"
        shifted = logits - logits.max(axis=1, keepdims=True)
        expected = 1.0 / np.exp(shifted).sum(axis=1)
        error = np.abs(confidence - expected).max()
        assert error < 2e-6, f"{path}: max |ours - numpy| = {error}"
        print(f"{os.path.basename(path)}: {n}x{c}x{h}x{w} {'bf16' if bf16 else 'f32'}, "
              f"max error {error:.2e}")


main()
