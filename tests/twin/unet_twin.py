#!/usr/bin/python3
"""PyTorch twin of the C engine's U-Net (ResNet18/34 encoder, smp-style decoder).

Importable: `build_model`, `one_cycle_lr`, `class_weights_for`, `make_batch`,
`segmentation_loss`, `grad_total_norm`, `clip_gradients`, `make_optimizer`.

As a script it writes an HDF5 dump that tests/test_twin.c compares the C engine
against: initial parameters and BN buffers, input and labels, the first forward's
logits and loss, the first backward's gradients and their norm, and parameters,
buffers, losses and learning rates after `--steps` optimiser steps on the same
batch. Parameter and buffer names are `model.named_parameters()` /
`named_buffers()` names (num_batches_tracked is skipped). With --bf16-peer it also
writes /peer_bf16: the same run under bfloat16 autocast, laid out like the root's results.

Run with Debian's Python (python3-torch): /usr/bin/python3 tests/twin/unet_twin.py --help
"""

import argparse
import copy
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
IGNORE_INDEX = 255
ARCH_LAYERS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3)}
ENCODER_CHANNELS = (64, 64, 128, 256, 512)  # f1..f5
DECODER_CHANNELS = (256, 128, 64, 32, 16)


def batch_norm(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv3x3-bn-relu-conv3x3-bn, + identity/downsample, relu."""

    def __init__(self, in_channels, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = batch_norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = batch_norm(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), batch_norm(channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """torchvision ResNet without avgpool/fc; returns the five feature maps f1..f5."""

    def __init__(self, layers):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (channels, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(in_channels, channels, stride if b == 0 else 1))
                in_channels = channels
            setattr(self, "layer%d" % (index + 1), nn.Sequential(*stage))

    def forward(self, x):
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return f1, f2, f3, f4, f5


def conv_bn_relu(in_channels, out_channels):
    """segmentation_models_pytorch's Conv2dReLU with use_batchnorm=True."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        batch_norm(out_channels),
        nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels + skip_channels, out_channels)
        self.conv2 = conv_bn_relu(out_channels, out_channels)

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UnetDecoder(nn.Module):
    """smp UnetDecoder, no center block, no attention."""

    def __init__(self):
        super().__init__()
        in_channels = (512,) + DECODER_CHANNELS[:-1]          # 512,256,128,64,32
        skip_channels = (256, 128, 64, 64, 0)                 # f4,f3,f2,f1,none
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(in_channels, skip_channels, DECODER_CHANNELS))

    def forward(self, f1, f2, f3, f4, f5):
        x = f5
        for block, skip in zip(self.blocks, (f4, f3, f2, f1, None)):
            x = block(x, skip)
        return x


class UNet(nn.Module):
    def __init__(self, arch="r18", classes=5):
        super().__init__()
        if arch not in ARCH_LAYERS:
            raise ValueError("arch must be one of %s" % ", ".join(ARCH_LAYERS))
        self.arch = arch
        self.encoder = ResNetEncoder(ARCH_LAYERS[arch])
        self.decoder = UnetDecoder()
        self.segmentation_head = nn.Sequential(nn.Conv2d(DECODER_CHANNELS[-1], classes, 3, padding=1,
                                                         bias=True))

    def forward(self, x):
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError("input height and width must be multiples of 32, got %s" %
                             (tuple(x.shape),))
        return self.segmentation_head(self.decoder(*self.encoder(x)))


def init_parameters(model):
    """Encoder convs kaiming-normal (fan_out, relu); decoder convs kaiming-uniform (fan_in,
    relu); head xavier-uniform with zero bias; BN weight 1, bias 0."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if name.startswith("encoder."):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif name.startswith("decoder."):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_model(arch="r18", classes=5, seed=1):
    torch.manual_seed(seed)
    model = UNet(arch, classes)
    init_parameters(model)
    return model


def one_cycle_lr(step, max_lr, warmup_fraction, total_steps):
    """The engine's one-cycle schedule: linear warm-up from max_lr/25, then cosine to
    max_lr/25/1e4. warmup = round(warmup_fraction * total_steps), at least 1; the rounding
    is half away from zero (C's lround), not Python's round-half-to-even."""
    initial = max_lr / 25.0
    final = initial / 1e4
    warmup = max(1, int(math.floor(warmup_fraction * total_steps + 0.5)))
    if step < warmup:
        return initial + (max_lr - initial) * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    progress = min(progress, 1.0)  # steps past total_steps stay at final (as the C engine)
    return final + (max_lr - final) * (1.0 + math.cos(math.pi * progress)) / 2.0


def class_weights_for(classes):
    weights = torch.full((classes,), 2.0, dtype=torch.float32)
    weights[0] = 1.0
    return weights


def make_batch(batch, height, width, classes, seed):
    """Standard-normal input; labels: random classes on an 8x8-pixel grid, upsampled, with
    about 5% of pixels set to 255 (ignored)."""
    g = torch.Generator().manual_seed(seed + 1000003)
    x = torch.randn(batch, 3, height, width, generator=g, dtype=torch.float32)
    cell = 8
    coarse = torch.randint(0, classes, (batch, (height + cell - 1) // cell,
                                        (width + cell - 1) // cell), generator=g)
    labels = coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :height, :width]
    ignore = torch.rand(batch, height, width, generator=g) < 0.05
    labels = labels.masked_fill(ignore, IGNORE_INDEX).to(torch.uint8).contiguous()
    return x, labels


def segmentation_loss(logits, labels, class_weights):
    return F.cross_entropy(logits, labels.long(), weight=class_weights.to(logits.dtype),
                           ignore_index=IGNORE_INDEX)


def grad_total_norm(model):
    total = 0.0
    for p in model.parameters():
        if p.grad is not None:
            total += float(p.grad.detach().double().pow(2).sum())
    return math.sqrt(total)


def clip_gradients(model, total_norm, clip_norm):
    if clip_norm > 0 and total_norm > clip_norm:
        scale = clip_norm / (total_norm + 1e-6)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)


def make_optimizer(model, name, lr, betas, eps, weight_decay):
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[name]
    return cls(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def named_buffers_to_dump(model):
    return [(n, b) for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch twin of the C U-Net engine: writes an HDF5 dump of initial weights, "
                    "first forward/backward and the state after a few optimiser steps.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCH_LAYERS), default="r18")
    p.add_argument("--height", type=int, default=64, help="multiple of 32")
    p.add_argument("--width", type=int, default=64, help="multiple of 32")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="optimiser steps on the same batch")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.3, help="warm-up fraction of total steps")
    p.add_argument("--total-steps", type=int, default=10, help="length of the lr schedule")
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--clip-norm", type=float, default=1.0, help="0 disables clipping")
    p.add_argument("--optimizer", choices=("adamw", "adam"), default="adamw")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8, help="Adam epsilon")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="compute precision (the dump is float32 either way); float64 gives a "
                        "reference free of float32 rounding, e.g. to size test tolerances")
    p.add_argument("--no-mkldnn", action="store_true",
                   help="disable PyTorch's oneDNN (mkldnn) convolutions: native im2col + BLAS")
    p.add_argument("--bf16-peer", action="store_true",
                   help="also run the same steps in float32 under bfloat16 autocast (oneDNN on) "
                        "and write them to /peer_bf16, for the C engine's bf16 tolerances")
    p.add_argument("--out", default="twin.h5", help="HDF5 file to write")
    args = p.parse_args(argv)
    if args.height % 32 or args.width % 32 or args.height <= 0 or args.width <= 0:
        p.error("--height and --width must be positive multiples of 32")
    if not 2 <= args.classes <= 255:
        p.error("--classes must be in [2, 255]")
    if args.batch < 1 or args.steps < 0 or args.total_steps < 1:
        p.error("--batch and --total-steps must be >= 1, --steps >= 0")
    return args


def numpy_of(t):
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
        t = t.float()
    return t.detach().cpu().numpy().copy()


def train_steps(model, x, labels, weights, args, bf16=False):
    """Runs `args.steps` optimiser steps of `model` on one batch; returns the first forward's
    logits and loss, the first backward's gradients and their norm, and the parameters,
    buffers, losses and lrs after the steps (with --steps 0 the first forward/backward runs
    on a copy, so `after` holds the initial state). bf16: the forward runs under CPU
    autocast to bfloat16 and the loss is computed in float32 on the logits cast to float32;
    backward, clipping and the optimiser are the same as without it."""
    optimizer = make_optimizer(model, args.optimizer, args.max_lr / 25.0,
                               (args.beta1, args.beta2), args.eps, args.weight_decay)
    r = {}

    def forward_backward(m):
        m.train()
        for p in m.parameters():
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = m(x)
        loss = segmentation_loss(logits.float() if bf16 else logits, labels, weights)
        loss.backward()
        return logits, loss

    def record_first(logits, loss, m, total_norm):
        r["output"] = numpy_of(logits)
        r["loss"] = float(loss)
        r["grads"] = {n: numpy_of(p.grad) for n, p in m.named_parameters()}
        r["grad_norm"] = total_norm

    if args.steps == 0:  # first forward on a copy so the buffers stay initial
        m = copy.deepcopy(model)
        logits, loss = forward_backward(m)
        record_first(logits, loss, m, grad_total_norm(m))
    losses, lrs = [], []
    for step in range(args.steps):
        logits, loss = forward_backward(model)
        total_norm = grad_total_norm(model)
        if step == 0:
            record_first(logits, loss, model, total_norm)
        clip_gradients(model, total_norm, args.clip_norm)
        lr = one_cycle_lr(step, args.max_lr, args.warmup, args.total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        losses.append(float(loss))
        lrs.append(lr)
    r["after"] = {
        "params": {n: numpy_of(p) for n, p in model.named_parameters()},
        "buffers": {n: numpy_of(b) for n, b in named_buffers_to_dump(model)},
        "losses": np.asarray(losses, dtype=np.float64),
        "lrs": np.asarray(lrs, dtype=np.float64),
    }
    return r


def run_twin(args):
    """Runs the twin; returns a dict of everything that goes in the dump. With
    args.bf16_peer, d["peer_bf16"] holds the same run in float32 parameters under bfloat16
    autocast (oneDNN on), from the same initial weights and batch."""
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    dtype = getattr(torch, args.dtype)
    model = build_model(args.arch, args.classes, args.seed)
    peer = copy.deepcopy(model) if args.bf16_peer else None
    x, labels = make_batch(args.batch, args.height, args.width, args.classes, args.seed)
    weights = class_weights_for(args.classes)
    model.to(dtype)  # initial values are drawn in float32 either way
    d = {
        "input": numpy_of(x), "labels": numpy_of(labels), "class_weights": numpy_of(weights),
        "params": {n: numpy_of(p) for n, p in model.named_parameters()},
        "buffers": {n: numpy_of(b) for n, b in named_buffers_to_dump(model)},
        "beta1": args.beta1, "beta2": args.beta2, "eps": args.eps,
    }
    d.update(train_steps(model, x.to(dtype), labels, weights.to(dtype), args))
    if peer is not None:
        start = time.perf_counter()
        with torch.backends.mkldnn.flags(enabled=True):
            d["peer_bf16"] = train_steps(peer, x, labels, weights, args, bf16=True)
        d["peer_bf16"]["seconds"] = time.perf_counter() - start
    return d


def max_rel(a, b):
    """max|a-b| / max|b| in float64 (0 when both are all zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), np.finfo(np.float64).tiny))


def worst_max_rel(got, want):
    """(error, name) of the tensor with the largest max_rel between two name->array dicts."""
    return max((max_rel(got[n], want[n]), n) for n in want)


def write_dump(path, args, d):
    import h5py
    with h5py.File(path, "w") as f:
        a = f.attrs
        a["arch"] = args.arch
        a["optimizer"] = args.optimizer
        a["dtype"] = args.dtype  # compute precision of the twin run (tensors are float32)
        a["no_mkldnn"] = np.int64(args.no_mkldnn)
        for key in ("height", "width", "batch", "classes", "seed", "steps", "total_steps"):
            a[key] = np.int64(getattr(args, key))
        a["max_lr"] = np.float64(args.max_lr)
        a["warmup_fraction"] = np.float64(args.warmup)
        a["weight_decay"] = np.float64(args.weight_decay)
        a["clip_norm"] = np.float64(args.clip_norm)
        for key in ("beta1", "beta2", "eps"):
            a[key] = np.float64(d[key])
        f.create_dataset("input", data=d["input"].astype(np.float32))
        f.create_dataset("labels", data=d["labels"].astype(np.uint8))
        f.create_dataset("class_weights", data=d["class_weights"].astype(np.float32))
        write_run(f, d)
        if "peer_bf16" in d:
            write_run(f.create_group("peer_bf16"), d["peer_bf16"])


def write_run(g, r):
    """Writes a train_steps result into group g: output, loss, grad_norm, grads/, after/.
    The root's dict also holds the initial params and buffers; they go before grads/, the
    order the reference dump has always had (the file stays byte-identical)."""
    g.create_dataset("output", data=r["output"].astype(np.float32))
    g.create_dataset("loss", data=np.float64(r["loss"]))
    g.create_dataset("grad_norm", data=np.float64(r["grad_norm"]))
    for group in ("params", "buffers", "grads"):
        if group in r:
            sub = g.create_group(group)
            for name, value in r[group].items():
                sub.create_dataset(name, data=value.astype(np.float32))
    after = g.create_group("after")
    for group in ("params", "buffers"):
        sub = after.create_group(group)
        for name, value in r["after"][group].items():
            sub.create_dataset(name, data=value.astype(np.float32))
    after.create_dataset("losses", data=r["after"]["losses"].astype(np.float64))
    after.create_dataset("lrs", data=r["after"]["lrs"].astype(np.float64))


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    d = run_twin(args)
    write_dump(args.out, args, d)
    elapsed = time.perf_counter() - start
    print("twin %s %dx%d batch %d classes %d: loss %.6f grad_norm %.4f, %d steps (last loss %s), "
          "%.1f s -> %s" % (args.arch, args.height, args.width, args.batch, args.classes, d["loss"],
                            d["grad_norm"], args.steps,
                            "%.6f" % d["after"]["losses"][-1] if args.steps else "-", elapsed,
                            args.out))
    if "peer_bf16" in d:
        peer = d["peer_bf16"]
        grad_err, grad_name = worst_max_rel(peer["grads"], d["grads"])
        after = ""
        if args.steps:
            after = ", worst param after %d steps %.1e (%s)" % (
                (args.steps,) + worst_max_rel(peer["after"]["params"], d["after"]["params"]))
        print("peer_bf16 (autocast, vs the %s reference, max|a-b|/max|b|): loss %.6f (rel %.1e), "
              "output %.1e, worst grad %.1e (%s)%s, %.1f s"
              % (args.dtype, peer["loss"], abs(peer["loss"] - d["loss"]) / abs(d["loss"]),
                 max_rel(peer["output"], d["output"]), grad_err, grad_name, after,
                 peer["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
