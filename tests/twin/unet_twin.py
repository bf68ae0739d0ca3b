#!/usr/bin/python3
"""PyTorch twin of the C engine's training step, on the U-Net of twin_model.py.

Importable: `one_cycle_lr`, `class_weights_for`, `make_batch`,
`segmentation_loss`, `grad_total_norm`, `clip_gradients`, `make_optimizer`.

As a script it writes a dump that tests/test_twin.c compares the C engine
against: initial parameters and BN buffers, input and labels, the first forward's
logits and loss, the first backward's gradients and their norm, and parameters,
buffers, losses and learning rates after `--steps` optimiser steps on the same
batch. Parameter and buffer names are `model.named_parameters()` /
`named_buffers()` names (num_batches_tracked is skipped). With --bf16-peer (--fp16-peer) it
also writes /peer_bf16 (/peer_fp16): the same run under bfloat16 (float16) autocast, laid out
like the root's results; --peer-loss-scale S runs the peers with the loss scaled by S.

The dump is HDF5 (h5py and numpy, imported only then) unless --out ends in ".twin": then it
is a tensor directory (index.txt + data.bin, the format is described in tests/twin_dump.c)
written with torch and the standard library alone, for machines without h5py or numpy.

Run with Debian's Python (python3-torch): /usr/bin/python3 tests/twin/unet_twin.py --help
"""

import argparse
import copy
import ctypes
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import branches_twin  # noqa: E402  (next to this file)
import kinks  # noqa: E402
from twin_model import ARCH_LAYERS, build_model  # noqa: E402

IGNORE_INDEX = 255


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
    """Over the parameters that train (a frozen encoder's have requires_grad False)."""
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[name]
    trained = [p for p in model.parameters() if p.requires_grad]
    return cls(trained, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def named_buffers_to_dump(model):
    return [(n, b) for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch twin of the C U-Net engine: writes a dump of initial weights, "
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
    p.add_argument("--fp16-peer", action="store_true",
                   help="also run the same steps in float32 under float16 CPU autocast (PyTorch "
                        "2.2 or later) and write them to /peer_fp16, for the C engine's fp16 "
                        "tolerances (use with --peer-loss-scale)")
    p.add_argument("--peer-loss-scale", type=float, default=1.0,
                   help="the peer runs compute gradients of the loss times this power of two "
                        "and divide them by it before the norm, clipping and step, as loss "
                        "scaling does (recorded as <peer>/loss_scale; test_twin does the same)")
    p.add_argument("--f32-peer", action="store_true",
                   help="also run the same steps in plain float32 and write them to /peer_f32, "
                        "for models where float32 itself is far from the float64 answer")
    p.add_argument("--branches", choices=branches_twin.BRANCH_MODES, default="none",
                   help="the Extended U-Net's class and box branches: none, trained (their losses "
                        "only) or injected (their outputs also join the decoder)")
    p.add_argument("--inject-blocks", default="0",
                   help="comma-separated decoder blocks 0..4 that get the injected planes")
    p.add_argument("--branch-dropout", type=float, default=0.25)
    p.add_argument("--class-loss-weight", type=float, default=1.0, help="w_cls")
    p.add_argument("--box-loss-weight", type=float, default=75.0, help="w_box")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="the encoder's parameters get no gradients and no updates (requires_grad "
                        "False), as the engine's train.frozen_epochs phase; BN still trains")
    p.add_argument("--keep-kinks", action="store_true",
                   help="leave the initialisation as drawn: by default (except with bf16/fp16 "
                        "peers) the biases are shifted a little so that no ReLU input of the first "
                        "forward is within rounding of 0, and the convolutions before max pools "
                        "nudged so that no pool window nearly ties (tests/twin/kinks.py says why)")
    p.add_argument("--skip-unless-needed-by", metavar="TEST_TWIN",
                   help="with --bf16-peer or --fp16-peer: first ask TEST_TWIN --needed MODE "
                        "whether a backend here runs that precision, and exit 77 (skipped) "
                        "without writing a dump when none does")
    p.add_argument("--out", default="twin.h5",
                   help="dump to write: a tensor directory (torch and the standard library only) "
                        "if it ends in .twin, else an HDF5 file (needs h5py and numpy)")
    args = p.parse_args(argv)
    if args.height % 32 or args.width % 32 or args.height <= 0 or args.width <= 0:
        p.error("--height and --width must be positive multiples of 32")
    if not 2 <= args.classes <= 255:
        p.error("--classes must be in [2, 255]")
    if args.batch < 1 or args.steps < 0 or args.total_steps < 1:
        p.error("--batch and --total-steps must be >= 1, --steps >= 0")
    try:
        args.inject_blocks = tuple(sorted({int(b) for b in args.inject_blocks.split(",")}))
    except ValueError:
        p.error("--inject-blocks must be comma-separated integers 0..4")
    if not all(0 <= b <= 4 for b in args.inject_blocks):
        p.error("--inject-blocks must be in 0..4")
    if args.peer_loss_scale < 1 or math.frexp(args.peer_loss_scale)[0] != 0.5:
        p.error("--peer-loss-scale must be a power of two >= 1")
    return args


def host_copy(t):
    """A CPU copy of t outside autograd; bfloat16 as float32, which holds it exactly."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.cpu().clone()


def cpu_autocast_enabled():
    try:
        return torch.is_autocast_enabled("cpu")  # PyTorch 2.4 and later
    except TypeError:
        return torch.is_autocast_cpu_enabled()


def set_keep_mask(model, args, step):
    """The class branch's dropout mask of optimiser step `step`, as the engine draws it."""
    if args.branches != "none":
        model.keep_mask = branches_twin.dropout_keep_mask(args.seed, step, 0, args.batch,
                                                          branches_twin.BRANCH_HIDDEN,
                                                          args.branch_dropout)


def train_steps(model, x, labels, weights, args, autocast_dtype=None, loss_scale=1.0):
    """Runs `args.steps` optimiser steps of `model` on one batch; returns the first forward's
    logits and loss, the first backward's gradients and their norm, and the parameters,
    buffers, losses and lrs after the steps (with --steps 0 the first forward/backward runs
    on a copy, so `after` holds the initial state). autocast_dtype (torch.bfloat16 or
    torch.float16): the forward runs under CPU autocast to it and the loss is computed in
    float32 on the logits cast to float32; backward, clipping and the optimiser are the same as
    without it. loss_scale (a power of two): backward runs on loss x loss_scale and the
    gradients are divided by it after (exactly), as GradScaler does with a fixed scale."""
    optimizer = make_optimizer(model, args.optimizer, args.max_lr / 25.0,
                               (args.beta1, args.beta2), args.eps, args.weight_decay)
    r = {}

    def forward_backward(m, step):
        m.train()
        for p in m.parameters():
            p.grad = None
        set_keep_mask(m, args, step)
        with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16,
                            enabled=autocast_dtype is not None):
            if autocast_dtype is not None and not cpu_autocast_enabled():
                sys.exit("this PyTorch (%s) has no CPU autocast to %s" % (torch.__version__,
                                                                          autocast_dtype))
            outputs = m(x)
        if args.branches == "none":
            outputs = (outputs,)
        if autocast_dtype is not None:
            outputs = tuple(o.float() for o in outputs)
        loss = segmentation_loss(outputs[0], labels, weights)
        if args.branches != "none":
            presence, boxes = branches_twin.branch_targets(labels, args.classes)
            loss = branches_twin.compound_loss(loss, outputs[1], outputs[2], presence, boxes,
                                               args.class_loss_weight, args.box_loss_weight)[0]
        (loss * loss_scale).backward()
        if loss_scale != 1.0:
            for p in m.parameters():
                if p.grad is not None:
                    p.grad.div_(loss_scale)
        return outputs, loss

    def record_first(outputs, loss, m, total_norm):
        logits = outputs[0]
        if len(outputs) > 1:
            r["class_logits"] = host_copy(outputs[1])
            r["box_logits"] = host_copy(outputs[2])
        r["output"] = host_copy(logits)
        r["loss"] = float(loss)
        r["grads"] = {n: host_copy(p.grad) for n, p in m.named_parameters() if p.grad is not None}
        r["grad_norm"] = total_norm

    if args.steps == 0:  # first forward on a copy so the buffers stay initial
        m = copy.deepcopy(model)
        outputs, loss = forward_backward(m, 0)
        record_first(outputs, loss, m, grad_total_norm(m))
    losses, lrs = [], []
    for step in range(args.steps):
        outputs, loss = forward_backward(model, step)
        total_norm = grad_total_norm(model)
        if step == 0:
            record_first(outputs, loss, model, total_norm)
        clip_gradients(model, total_norm, args.clip_norm)
        lr = one_cycle_lr(step, args.max_lr, args.warmup, args.total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        losses.append(float(loss))
        lrs.append(lr)
    if loss_scale != 1.0:
        r["loss_scale"] = loss_scale
    r["after"] = {
        "params": {n: host_copy(p) for n, p in model.named_parameters()},
        "buffers": {n: host_copy(b) for n, b in named_buffers_to_dump(model)},
        "losses": torch.tensor(losses, dtype=torch.float64),
        "lrs": torch.tensor(lrs, dtype=torch.float64),
    }
    return r


PEER_AUTOCAST = {"peer_bf16": torch.bfloat16, "peer_fp16": torch.float16, "peer_f32": None}


def run_twin(args):
    """Runs the twin; returns a dict of everything that goes in the dump. With
    args.bf16_peer, d["peer_bf16"] holds the same run in float32 parameters under bfloat16
    autocast (oneDNN on), from the same initial weights and batch; with args.fp16_peer,
    d["peer_fp16"] the same under float16 autocast with loss scaling; with args.f32_peer,
    d["peer_f32"] the same run in plain float32."""
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    dtype = getattr(torch, args.dtype)
    model = build_model(args.arch, args.classes, args.seed, args.branches, args.inject_blocks,
                        args.branch_dropout)
    if args.freeze_encoder:
        model.encoder.requires_grad_(False)
    x, labels = make_batch(args.batch, args.height, args.width, args.classes, args.seed)
    # Not for bf16/fp16 peers: rounding to 8 (11) bits moves ReLU inputs far more than any
    # margin, and those modes are judged against PyTorch's autocast on the same point.
    if not args.keep_kinks and not (args.bf16_peer or args.fp16_peer):
        margin, gap = kinks.away_from_kinks([copy.deepcopy(model).double(), model], x.double(),
                                            lambda m: set_keep_mask(m, args, 0))
        print("ReLU inputs at least %.1e of their spread from 0 (biases shifted), max-pool "
              "windows' two largest inputs at least %.1e apart" % (margin, gap))
    peers = {name: copy.deepcopy(model) for name, wanted in
             (("peer_bf16", args.bf16_peer), ("peer_fp16", args.fp16_peer),
              ("peer_f32", args.f32_peer)) if wanted}
    weights = class_weights_for(args.classes)
    model.to(dtype)  # initial values are drawn in float32 either way
    d = {
        "input": host_copy(x), "labels": host_copy(labels), "class_weights": host_copy(weights),
        "params": {n: host_copy(p) for n, p in model.named_parameters()},
        "buffers": {n: host_copy(b) for n, b in named_buffers_to_dump(model)},
        "beta1": args.beta1, "beta2": args.beta2, "eps": args.eps,
    }
    with kinks.KinkMargins(model) as watch:
        d.update(train_steps(model, x.to(dtype), labels, weights.to(dtype), args))
    print("over all forwards: ReLU inputs at least %.1e of their spread from 0, max-pool gaps at "
          "least %.1e" % (watch.relu, watch.pool))
    for name, peer in peers.items():
        start = time.perf_counter()
        with torch.backends.mkldnn.flags(enabled=True):
            d[name] = train_steps(peer, x, labels, weights, args, PEER_AUTOCAST[name],
                                  args.peer_loss_scale)
        d[name]["seconds"] = time.perf_counter() - start
    return d


def max_rel(a, b):
    """max|a-b| / max|b| in float64 (0 when both are all zero)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / max(float(b.abs().max()), sys.float_info.min))


def worst_max_rel(got, want):
    """(error, name) of the tensor with the largest max_rel between two name->tensor dicts."""
    return max((max_rel(got[n], want[n]), n) for n in want)


# --------------------------------------------------------------------------- dump writers
# Both take the same calls: attr(name, value) for a root attribute (str, int or bool, float)
# and dataset(name, value, kind) for a tensor or Python number stored as kind "f32", "f64" or
# "u8"; a name is a path from the root ("peer_bf16/grads/encoder.conv1.weight"), its groups
# made as needed. Used as context managers; the dump is complete once the block exits.

class H5Writer:
    """An HDF5 file (h5py and numpy, imported only here)."""

    def __init__(self, path):
        import h5py
        import numpy
        self.np = numpy
        self.types = {"f32": numpy.float32, "f64": numpy.float64, "u8": numpy.uint8}
        self.file = h5py.File(path, "w")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def attr(self, name, value):
        if isinstance(value, str):
            self.file.attrs[name] = value
        elif isinstance(value, int):  # bool too
            self.file.attrs[name] = self.np.int64(value)
        else:
            self.file.attrs[name] = self.np.float64(value)

    def dataset(self, name, value, kind):
        dtype = self.types[kind]
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().numpy().astype(dtype)
        else:
            data = dtype(value)
        group = self.file
        *parents, leaf = name.split("/")
        for part in parents:  # one level at a time, as the dump has always been made
            group = group[part] if part in group else group.create_group(part)
        group.create_dataset(leaf, data=data)


class TwinWriter:
    """A tensor directory, DUMP.twin/ (index.txt + data.bin; tests/twin_dump.c has the format):
    torch and the standard library only. An existing dump there is replaced; index.txt is
    written last, so an interrupted run leaves no readable dump."""

    TYPES = {"f32": torch.float32, "f64": torch.float64, "u8": torch.uint8}

    def __init__(self, path):
        if sys.byteorder != "little":
            raise SystemExit("%s: the .twin format is little-endian, this machine is not" % path)
        os.makedirs(path, exist_ok=True)
        strangers = sorted(set(os.listdir(path)) - {"index.txt", "data.bin"})
        if strangers:
            raise SystemExit("%s: not a .twin dump directory (holds %s)" %
                             (path, ", ".join(strangers)))
        self.path = path
        self.index = os.path.join(path, "index.txt")
        if os.path.exists(self.index):
            os.remove(self.index)
        self.data = open(os.path.join(path, "data.bin"), "wb")
        self.lines = ["twin-dump 1"]
        self.names = {"attribute": set(), "dataset": set()}
        self.offset = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.data.close()
        if exc_type is None:
            with open(self.index + ".tmp", "w", encoding="utf-8") as f:
                f.write("\n".join(self.lines) + "\n")
            os.replace(self.index + ".tmp", self.index)

    def _add_name(self, what, name):
        if not name or any(c.isspace() for c in name) or "" in name.split("/"):
            raise ValueError("%s: bad %s name %r" % (self.path, what, name))
        if name in self.names[what]:
            raise ValueError("%s: %s %s written twice" % (self.path, what, name))
        self.names[what].add(name)

    def attr(self, name, value):
        self._add_name("attribute", name)
        if isinstance(value, str):
            if "\n" in value:
                raise ValueError("%s: attribute %s holds a newline" % (self.path, name))
            kind, text = "string", value
        elif isinstance(value, int):  # bool too
            kind, text = "long", str(int(value))
        else:
            kind, text = "double", repr(float(value))  # repr round-trips exactly
        self.lines.append("attribute %s %s %s" % (name, kind, text))

    def dataset(self, name, value, kind):
        self._add_name("dataset", name)
        t = torch.as_tensor(value, dtype=self.TYPES[kind]).detach().cpu().contiguous()
        size = t.numel() * t.element_size()
        if size:  # the tensor's own bytes, without numpy
            self.data.write((ctypes.c_char * size).from_address(t.data_ptr()))
        dims = "x".join(str(n) for n in t.shape) or "scalar"
        self.lines.append("dataset /%s %s %s %d" % (name, kind, dims, self.offset))
        self.offset += size


def open_dump(path):
    """The writer for --out: a tensor directory if path ends in .twin, else an HDF5 file."""
    return TwinWriter(path) if path.rstrip("/").endswith(".twin") else H5Writer(path)


def write_dump(path, args, d):
    with open_dump(path) as w:
        w.attr("arch", args.arch)
        w.attr("freeze_encoder", bool(args.freeze_encoder))
        w.attr("branches", args.branches)
        w.attr("inject_blocks", sum(1 << b for b in args.inject_blocks))
        w.attr("branch_dropout", float(args.branch_dropout))
        w.attr("class_loss_weight", float(args.class_loss_weight))
        w.attr("box_loss_weight", float(args.box_loss_weight))
        w.attr("optimizer", args.optimizer)
        w.attr("dtype", args.dtype)  # compute precision of the twin run (tensors are float32)
        w.attr("no_mkldnn", bool(args.no_mkldnn))
        for key in ("height", "width", "batch", "classes", "seed", "steps", "total_steps"):
            w.attr(key, int(getattr(args, key)))
        w.attr("max_lr", float(args.max_lr))
        w.attr("warmup_fraction", float(args.warmup))
        w.attr("weight_decay", float(args.weight_decay))
        w.attr("clip_norm", float(args.clip_norm))
        for key in ("beta1", "beta2", "eps"):
            w.attr(key, float(d[key]))
        w.dataset("input", d["input"], "f32")
        w.dataset("labels", d["labels"], "u8")
        w.dataset("class_weights", d["class_weights"], "f32")
        write_run(w, "", d)
        for name in PEER_AUTOCAST:
            if name in d:
                write_run(w, name + "/", d[name])


def write_run(w, prefix, r):
    """Writes a train_steps result under prefix: output, loss, grad_norm, grads/, after/.
    The root's dict also holds the initial params and buffers; they go before grads/, the
    order the reference dump has always had (the HDF5 file stays byte-identical)."""
    w.dataset(prefix + "output", r["output"], "f32")
    for name in ("class_logits", "box_logits"):
        if name in r:
            w.dataset(prefix + name, r[name], "f32")
    w.dataset(prefix + "loss", r["loss"], "f64")
    w.dataset(prefix + "grad_norm", r["grad_norm"], "f64")
    if "loss_scale" in r:
        w.dataset(prefix + "loss_scale", r["loss_scale"], "f64")
    for group in ("params", "buffers", "grads"):
        for name, value in r.get(group, {}).items():
            w.dataset(prefix + group + "/" + name, value, "f32")
    for group in ("params", "buffers"):
        for name, value in r["after"][group].items():
            w.dataset(prefix + "after/" + group + "/" + name, value, "f32")
    w.dataset(prefix + "after/losses", r["after"]["losses"], "f64")
    w.dataset(prefix + "after/lrs", r["after"]["lrs"], "f64")


def skip_unless_needed(args):
    """Exits 77 when no test could use the dump (a precision no backend here runs): PyTorch's
    bf16 autocast is emulated, and slow, on CPUs without native bf16."""
    mode = "bf16" if args.bf16_peer else "fp16" if args.fp16_peer else None
    if not args.skip_unless_needed_by or mode is None:
        return
    probe = subprocess.run([args.skip_unless_needed_by, "--needed", mode], capture_output=True,
                           text=True)
    print(probe.stdout, end="")
    if probe.returncode == 77:
        sys.exit(77)
    if probe.returncode != 0:
        sys.exit("%s --needed %s failed (exit %d): %s"
                 % (args.skip_unless_needed_by, mode, probe.returncode, probe.stderr))


def main(argv=None):
    args = parse_args(argv)
    skip_unless_needed(args)
    start = time.perf_counter()
    d = run_twin(args)
    write_dump(args.out, args, d)
    elapsed = time.perf_counter() - start
    print("twin %s %dx%d batch %d classes %d: loss %.6f grad_norm %.4f, %d steps (last loss %s), "
          "%.1f s -> %s" % (args.arch, args.height, args.width, args.batch, args.classes, d["loss"],
                            d["grad_norm"], args.steps,
                            "%.6f" % float(d["after"]["losses"][-1]) if args.steps else "-", elapsed,
                            args.out))
    for name in PEER_AUTOCAST:
        if name not in d:
            continue
        peer = d[name]
        grad_err, grad_name = worst_max_rel(peer["grads"], d["grads"])
        after = ""
        if args.steps:
            after = ", worst param after %d steps %.1e (%s)" % (
                (args.steps,) + worst_max_rel(peer["after"]["params"], d["after"]["params"]))
        print("%s (vs the %s reference, max|a-b|/max|b|): loss %.6f (rel %.1e), "
              "output %.1e, worst grad %.1e (%s)%s, %.1f s"
              % (name, args.dtype, peer["loss"], abs(peer["loss"] - d["loss"]) / abs(d["loss"]),
                 max_rel(peer["output"], d["output"]), grad_err, grad_name, after,
                 peer["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
