"""Moves a twin model's first forward away from its kinks: ReLU inputs near 0 and max-pool
windows whose two largest inputs nearly tie.

A ReLU input within rounding of 0 is a coin toss between engines: float64 PyTorch passes the
gradient there and float32 C does not (or the reverse), and since batch norm's backward nearly
cancels, one such pixel moves a whole tensor's gradient by up to 1e-1 (measured: ResNet18 at
64x64 on an AVX2-only CPU, where FMA rounding flipped one ReLU of decoder block 4 and one of
encoder layer3: 7e-3 and 3e-1 on the weight gradients behind them). A max-pool window whose
two largest inputs are within rounding of each other is the same coin toss, for which input
the gradient goes to (measured: VGG16-BN at 128x128 on an AVX-512 CPU, one 2x2 window of
encoder.features.23 with a gap of 7.9e-7 of its channel's spread: 7e-2 on the weight gradient
of features.20). Neither is an error of either engine, so the twin picks its starting point
away from both, in forward order: for each ReLU call, the per-channel bias of the last layer
before it (the batch norm, or the convolution without one) is shifted within +-width x the
channel's spread to the middle of the widest gap between the channel's inputs and 0; for each
max pool, the convolution weights of the channels with a near-tie get a little noise until
none is left. The model stays a random initialisation (biases start at 0 and move by a few
hundredths, the weights of a few channels by 1e-4 of their spread); its ReLU inputs then keep
a margin of about 1e-3 of their spread from 0 and its pool windows a gap of at least 1e-5,
far above float32's rounding there.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

AFFINE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Conv2d, nn.Linear)


def per_channel(z):
    """z [N,C,...] as [C, N*...] in float64."""
    return z.transpose(0, 1).reshape(z.shape[1], -1).double()


def widest_gap_shift(z, width):
    """Per channel of z [N,C,...]: the shift s in [-width*spread, width*spread] that maximises
    min |z + s| (the middle of the widest gap between the values -z and the window's ends),
    and that minimum as a fraction of the spread (the standard deviation)."""
    values = -per_channel(z)
    reach = width * values.std(dim=1, keepdim=True).clamp_min(1e-12)
    inside = torch.maximum(torch.minimum(values, reach), -reach)
    ends = torch.cat((-reach, reach), dim=1)
    points = torch.sort(torch.cat((inside, ends), dim=1), dim=1).values
    gaps = points[:, 1:] - points[:, :-1]
    widest = gaps.argmax(dim=1, keepdim=True)
    low = points.gather(1, widest)
    high = points.gather(1, widest + 1)
    return ((low + high) / 2).squeeze(1), ((high - low) / 2 / (reach / width)).squeeze(1)


class _Restart(Exception):
    pass


def pool_gaps(z, pool):
    """Per window of the max pool over z [N,C,H,W] whose maximum is positive: the gap between
    its two largest inputs as a fraction of the channel's spread, [N,C,windows] (inf for the
    others; z is a ReLU's output, so 0 padding is no different from PyTorch's -inf)."""
    k, s, p = (v if isinstance(v, int) else v[0]
               for v in (pool.kernel_size, pool.stride, pool.padding))
    n, c, h, w = z.shape
    windows = F.unfold(z.double().reshape(n * c, 1, h, w), k, padding=p, stride=s)
    top = windows.topk(2, dim=1).values
    spread = per_channel(z).std(dim=1).clamp_min(1e-12).repeat(n)[:, None]
    gaps = (top[:, 0] - top[:, 1]) / spread
    gaps = torch.where(top[:, 0] > 0, gaps, torch.full_like(gaps, float("inf")))
    return gaps.reshape(n, c, -1)


def shift_bias(models, name, shift):
    with torch.no_grad():
        for m in models:
            target = m.get_submodule(name)
            target.bias.add_(shift.to(target.bias.dtype))


def nudge_channels(models, name, channels, size, seed):
    """Adds size x (the channel's weight spread) x N(0,1) noise to the weights of the given
    output channels of convolution `name`, the same draw in every model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        reference = models[0].get_submodule(name).weight
        noise = torch.zeros(reference.shape, dtype=torch.float64)
        for c in channels:
            noise[c] = torch.randn(reference[c].shape, generator=generator,
                                   dtype=torch.float64) * reference[c].double().std() * size
        for m in models:
            target = m.get_submodule(name)
            target.weight.add_(noise.to(target.weight.dtype))


def away_from_kinks(models, x, prepare, width=0.05, pool_gap=1e-5, attempts=12):
    """Moves every model in `models` (copies of one model; the first is the one run, in
    float64: placing the shifts in float32 once moved VGG16-BN's point into a 0.55 gradient
    error at encoder.features.40, likely a near-tie of the pool after it, before pools were
    looked at) away from the kinks of its first forward on x,
    in forward order, within one training-mode forward (running statistics left as they were):
     - no ReLU input near 0: the per-channel bias of the last affine module before the ReLU is
       shifted (widest_gap_shift), and the forward goes on from the shifted input;
     - no max-pool window whose two largest inputs are within pool_gap of the channel's spread:
       the weights of the convolution before it, in the channels with such a window, get noise
       of 10 x pool_gap of their spread, and the forward starts again (the ReLU before the
       pool placed again), until none is left. Such a near-tie is a coin toss too: on an
       AVX-512 CPU the C engine took the other input of one 2x2 window of VGG16-BN whose gap was
       7.9e-7 of its spread, and the weight gradient behind it moved by 7e-2 (PyTorch float32:
       4e-6).
    prepare(m) is called before each forward (e.g. to set a dropout mask). Returns the smallest
    ReLU margin and the smallest pool gap, as fractions of the channel's spread."""
    work = models[0]
    names = {m: n for n, m in work.named_modules()}
    saved = {n: b.clone() for n, b in work.named_buffers()}
    margins, gaps, draws = {}, {}, {}
    last = {"affine": None, "conv": None, "call": 0, "relu": None}

    def ran(module, inputs, output):
        last["affine"] = module
        if isinstance(module, nn.Conv2d):
            last["conv"] = module

    def relu(module, inputs):
        k = last["call"] = last["call"] + 1
        last["relu"] = k
        affine = last["affine"]
        if k in margins or affine is None or getattr(affine, "bias", None) is None:
            return None
        z = inputs[0]
        shift, margin = widest_gap_shift(z, width)
        shift_bias(models, names[affine], shift)
        margins[k] = float(margin.min())
        return (z + shift.to(z.dtype).reshape(1, -1, *([1] * (z.dim() - 2))),)

    def pool(module, inputs):
        k = last["call"] = last["call"] + 1
        near = pool_gaps(inputs[0], module).amin(dim=(0, 2))
        conv = last["conv"]
        if bool((near >= pool_gap).all()) or conv is None:
            gaps[k] = float(near.min())
            return
        draw = draws.get(k, 0)
        if draw == attempts:
            raise SystemExit("kinks: max pool %s keeps a window within %.0e of a tie after %d "
                             "draws" % (names[module], pool_gap, attempts))
        draws[k] = draw + 1
        channels = torch.nonzero(near < pool_gap).flatten().tolist()
        nudge_channels(models, names[conv], channels, 10 * pool_gap, seed=1000 * k + draw)
        margins.pop(last["relu"], None)
        raise _Restart

    hooks = [m.register_forward_hook(ran) for m in work.modules() if isinstance(m, AFFINE)]
    hooks += [m.register_forward_pre_hook(relu) for m in work.modules() if isinstance(m, nn.ReLU)]
    hooks += [m.register_forward_pre_hook(pool) for m in work.modules()
              if isinstance(m, nn.MaxPool2d)]
    try:
        work.train()
        while True:
            last.update(affine=None, conv=None, call=0, relu=None)
            prepare(work)
            try:
                with torch.no_grad():
                    work(x)
                break
            except _Restart:
                pass
            finally:
                with torch.no_grad():
                    for n, b in work.named_buffers():
                        b.copy_(saved[n])
    finally:
        for h in hooks:
            h.remove()
    inf = [float("inf")]
    return min(list(margins.values()) + inf), min(list(gaps.values()) + inf)


class KinkMargins:
    """Context manager: over every forward of `model` while active, the smallest |ReLU input|
    and the smallest max-pool gap (pool_gaps), each as a fraction of the channel's spread
    (.relu, .pool). The hooks are plain functions, so a deep copy of the model made inside the
    block (train_steps with no steps runs on one) reports here too."""

    def __init__(self, model):
        self.model = model
        self.relu = self.pool = float("inf")
        self.hooks = []

    def __enter__(self):
        def see(module, inputs):
            z = inputs[0].detach()
            if isinstance(module, nn.MaxPool2d):
                self.pool = min(self.pool, float(pool_gaps(z, module).min()))
                return
            values = per_channel(z)
            spread = values.std(dim=1).clamp_min(1e-12)
            self.relu = min(self.relu, float((values.abs().min(dim=1).values / spread).min()))

        self.hooks = [m.register_forward_pre_hook(see) for m in self.model.modules()
                      if isinstance(m, (nn.ReLU, nn.MaxPool2d))]
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
