#!/usr/bin/python3
"""Weights between PyTorch and the engine.

  convert_weights.py to-h5 WEIGHTS.pt OUT.h5
      A PyTorch state_dict (a .pt/.pth file; {"state_dict": ...} and {"model": ...} wrappers are
      unwrapped) to the HDF5 file that `model.init` reads: /params/<name> and /buffers/<name>
      (float32), names as the engine's (segmentation_models_pytorch's Unet) model has them.
      Recognised namings: segmentation_models_pytorch (keys "encoder.", "decoder.",
      "segmentation_head." kept as they are), a torchvision ResNet18/34 ("conv1.", "layer1."...;
      "fc." dropped) and a torchvision VGG16/19 with or without BN ("features."; "classifier."
      dropped): the encoder's tensors get the prefix "encoder.". BatchNorm's num_batches_tracked
      is dropped (the engine keeps no such count).
  convert_weights.py to-pt CHECKPOINT.h5 OUT.pt
      The reverse: a checkpoint (or any file of /params and /buffers) to a state_dict that
      segmentation_models_pytorch.Unet(encoder_name="resnet34", classes=K) (or the twin,
      tests/twin/twin_model.py) loads with strict=True; num_batches_tracked is added as the
      checkpoint's step (0 when it has none).

Needs torch, h5py and numpy. Prints what it kept and what it dropped.
"""

import os
import sys

import h5py
import numpy as np
import torch

DROPPED_PREFIXES = {"torchvision-resnet": ("fc.",), "torchvision-vgg": ("classifier.",),
                    "smp": ()}
BUFFER_SUFFIXES = (".running_mean", ".running_var")


def naming_of(state):
    keys = list(state)
    if any(k.startswith(("encoder.", "decoder.", "segmentation_head.")) for k in keys):
        return "smp"
    if any(k.startswith("features.") for k in keys):
        return "torchvision-vgg"
    if "conv1.weight" in state and any(k.startswith("layer1.") for k in keys):
        return "torchvision-resnet"
    raise SystemExit("cannot tell the naming of this state_dict (first keys: %s)" %
                     ", ".join(keys[:5]))


def load_state(path):
    state = torch.load(path, map_location="cpu")
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise SystemExit("%s: not a state_dict of tensors" % path)
    return state


def to_h5(source, out):
    state = load_state(source)
    naming = naming_of(state)
    prefix = "" if naming == "smp" else "encoder."
    kept, dropped = 0, []
    with h5py.File(out + ".tmp", "w") as f:
        for name, value in state.items():
            if name.endswith(".num_batches_tracked") or name.startswith(DROPPED_PREFIXES[naming]):
                dropped.append(name)
                continue
            group = "buffers" if name.endswith(BUFFER_SUFFIXES) else "params"
            f.create_dataset("%s/%s%s" % (group, prefix, name),
                             data=value.detach().float().numpy())
            kept += 1
    os.replace(out + ".tmp", out)
    print("%s (%s naming): %d tensors -> %s; dropped %d: %s" % (
        source, naming, kept, out, len(dropped), ", ".join(dropped[:6]) +
        (" ..." if len(dropped) > 6 else "")))


def to_pt(source, out):
    state = {}
    with h5py.File(source, "r") as f:
        step = int(f.attrs.get("step", 0))
        for group in ("params", "buffers"):
            if group not in f:
                raise SystemExit("%s: no /%s group" % (source, group))
            for name, dataset in f[group].items():
                state[name] = torch.from_numpy(np.asarray(dataset[()], dtype=np.float32))
                if name.endswith(".running_mean"):
                    state[name[:-len("running_mean")] + "num_batches_tracked"] = torch.tensor(
                        step, dtype=torch.long)
    torch.save(state, out)
    print("%s: %d tensors -> %s" % (source, len(state), out))


def main(argv):
    if len(argv) != 4 or argv[1] not in ("to-h5", "to-pt"):
        print(__doc__, file=sys.stderr)
        return 2
    (to_h5 if argv[1] == "to-h5" else to_pt)(argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
