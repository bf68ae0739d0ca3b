#!/usr/bin/python3
"""model.init and docs/examples/convert_weights.py, against the PyTorch twin:
 - a torchvision-named ResNet18 and VGG16-BN encoder (twin weights, plus the classifier a
   torchvision model has) converted to HDF5 and loaded: every encoder tensor arrives bit for bit,
   the decoder and head keep their initialisation, the report counts loaded / missing /
   unexpected right (one stray tensor added to the file);
 - the checkpoint exported back with to-pt loads into the twin with strict=True, same values;
 - a full smp-named model with 5 classes into a 7-class model: refused, naming the tensor and
   both shapes.
Usage: pretrained_init.py BUILD_DIR WORK_DIR"""

import os
import subprocess
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "twin"))
import twin_model  # noqa: E402

CONVERT = os.path.join(HERE, "..", "docs", "examples", "convert_weights.py")


def run(args, expect_ok=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d:\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def check_arch(build, work, arch, extra_prefix):
    model = twin_model.build_model(arch, 5, 7)
    state = model.state_dict()
    encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    encoder[extra_prefix + "weight"] = torch.zeros(10, 4)  # torchvision's classifier, dropped
    source, init, out = (os.path.join(work, "%s.%s" % (arch, ext)) for ext in ("pt", "h5", "out.h5"))
    torch.save(encoder, source)
    run([sys.executable, CONVERT, "to-h5", source, init])
    with h5py.File(init, "a") as f:
        f["params/not_in_the_model.weight"] = np.zeros(3, dtype=np.float32)
    p = run([os.path.join(build, "tests", "test_pretrained"), arch, "5", init, out])
    report = p.stdout.strip().splitlines()[-1]
    encoder_tensors = sum(1 for k in encoder if not k.endswith("num_batches_tracked")) - 1
    model_tensors = sum(1 for k in state if not k.endswith("num_batches_tracked"))
    want = "report loaded=%d missing=%d unexpected=1" % (encoder_tensors,
                                                        model_tensors - encoder_tensors)
    assert report == want, "%s: %r, want %r\n%s" % (arch, report, want, p.stdout)
    with h5py.File(out, "r") as f:
        for name, value in state.items():
            if name.endswith("num_batches_tracked"):
                continue
            got = f[("buffers/" if "running" in name else "params/") + name][()]
            same = np.array_equal(got, value.numpy())
            if name.startswith("encoder."):
                assert same, "%s: %s not loaded bit for bit" % (arch, name)
            elif name.endswith(".weight") and value.dim() > 1:
                assert not same, "%s: %s should keep the engine's own initialisation" % (arch, name)
    exported = os.path.join(work, "%s.export.pt" % arch)
    run([sys.executable, CONVERT, "to-pt", out, exported])
    twin = twin_model.build_model(arch, 5, 99)
    twin.load_state_dict(torch.load(exported), strict=True)
    for name, value in twin.state_dict().items():
        if name.startswith("encoder.") and not name.endswith("num_batches_tracked"):
            assert torch.equal(value, state[name]), "%s: %s after the round trip" % (arch, name)
    print("ok %s: %s; round trip through to-pt loads with strict=True" % (arch, report))


def check_shape_mismatch(build, work):
    source, init = os.path.join(work, "full.pt"), os.path.join(work, "full.h5")
    torch.save(twin_model.build_model("r18", 5, 7).state_dict(), source)
    run([sys.executable, CONVERT, "to-h5", source, init])
    p = run([os.path.join(build, "tests", "test_pretrained"), "r18", "7", init,
             os.path.join(work, "never.h5")], expect_ok=False)
    message = p.stderr
    # the head's bias or weight, whichever HDF5 lists first
    assert p.returncode == 1 and init in message and (
        "segmentation_head.0.bias is 5 but the model's segmentation_head.0.bias is 7" in message or
        "segmentation_head.0.weight is 5x16x3x3 but the model's segmentation_head.0.weight is "
        "7x16x3x3" in message), (p.returncode, message)
    assert not os.path.exists(os.path.join(work, "never.h5"))
    print("ok shape mismatch refused: %s" % message.strip().splitlines()[-1])


def main(argv):
    build, work = argv[1], argv[2]
    os.makedirs(work, exist_ok=True)
    check_arch(build, work, "r18", "fc.")
    check_arch(build, work, "vgg16_bn", "classifier.0.")
    check_shape_mismatch(build, work)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
