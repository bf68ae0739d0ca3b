"""Moves a twin model's first forward away from the ReLUs' kinks.

A ReLU input within rounding of 0 is a coin toss between engines: float64 PyTorch passes the
gradient there and float32 C does not (or the reverse), and since batch norm's backward nearly
cancels, one such pixel moves a whole tensor's gradient by up to 1e-1 (measured: ResNet18 at
64x64 on an AVX2-only CPU, where FMA rounding flipped one ReLU of decoder block 4 and one of
encoder layer3: 7e-3 and 3e-1 on the weight gradients behind them). That is not an error of
either engine, so the twin picks its starting point where no ReLU input is near 0: in forward
order, for each ReLU call, the per-channel bias of the last layer before it (the batch norm, or
the convolution without one) is shifted within +-width x the channel's spread to the middle of
the widest gap between the channel's inputs and 0. The model stays a random initialisation
(the biases start at 0 and move by a few hundredths); its ReLU inputs then keep a margin of
about 1e-3 of their spread from 0, some thousand times float32's rounding there.
"""

import torch
import torch.nn as nn

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


class _Enough(Exception):
    pass


def relu_calls(model, x, prepare, wanted=None):
    """The inputs of the ReLU calls of one training-mode forward, each with the last affine
    module that ran before it (all of them, or only call number `wanted`, the forward stopped
    there); running statistics left as they were."""
    saved = {n: b.clone() for n, b in model.named_buffers()}
    last = [None]
    calls = []

    def see(module, inputs):
        if wanted is None or len(calls) == wanted:
            calls.append((inputs[0].detach().clone(), last[0]))
        else:
            calls.append(None)
        if wanted is not None and len(calls) > wanted:
            raise _Enough

    hooks = [m.register_forward_hook(lambda m, i, o: last.__setitem__(0, m))
             for m in model.modules() if isinstance(m, AFFINE)]
    hooks += [m.register_forward_pre_hook(see) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        model.train()
        prepare(model)
        with torch.no_grad():
            model(x)
    except _Enough:
        pass
    finally:
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved[n])
    return calls


def away_from_kinks(models, x, prepare, width=0.05):
    """Shifts the biases of every model in `models` (copies of one model; the first is the one
    run, in float64: placing the shifts in float32 moved VGG16-BN's point enough to turn a pass
    into a 0.55 gradient error at encoder.features.40, cause not established) so that no ReLU
    input of the first forward on x is near 0. prepare(m) is called before each forward (e.g. to
    set a dropout mask). Returns the smallest margin, as a fraction of the channel's spread."""
    work = models[0]
    count = len(relu_calls(work, x, prepare))
    smallest = float("inf")
    for k in range(count):
        z, module = relu_calls(work, x, prepare, wanted=k)[k]
        if module is None or getattr(module, "bias", None) is None:
            continue
        shift, margin = widest_gap_shift(z, width)
        smallest = min(smallest, float(margin.min()))
        name = name_of(work, module)
        with torch.no_grad():
            for m in models:
                target = m.get_submodule(name)
                target.bias.add_(shift.to(target.bias.dtype))
    return smallest


def name_of(model, module):
    for name, m in model.named_modules():
        if m is module:
            return name
    raise KeyError("module not in model")


class ReluMargin:
    """Context manager: the smallest |ReLU input| / that channel's spread over every forward of
    `model` while active (.smallest)."""

    def __init__(self, model):
        self.model = model
        self.smallest = float("inf")
        self.hooks = []

    def _see(self, module, inputs):
        z = per_channel(inputs[0].detach())
        spread = z.std(dim=1).clamp_min(1e-12)
        self.smallest = min(self.smallest, float((z.abs().min(dim=1).values / spread).min()))

    def __enter__(self):
        self.hooks = [m.register_forward_pre_hook(self._see)
                      for m in self.model.modules() if isinstance(m, nn.ReLU)]
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
