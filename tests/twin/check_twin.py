#!/usr/bin/python3
"""Self-check of the PyTorch twin's hand-written parts (tests/twin/unet_twin.py).

  * one-cycle lr schedule: endpoints, warm-up rounding, monotonicity, and the dumped lrs
    against a separately written closed form;
  * the dump's /loss against a numpy weighted cross-entropy of the dumped /output;
  * float64 autograd (model.double()) against central finite differences of the float64
    loss for a handful of random weight elements, and the dumped gradients against it
    (tightly for a --dtype float64 dump, loosely for float32: see README.md);
  * every optimiser step of the twin against a numpy re-implementation of the total norm,
    clipping and Adam/AdamW from the same gradients (both optimisers, with and without
    clipping), the re-run reproducing the dump's after/ tensors exactly, and the BN
    running-statistics update (momentum 0.1, unbiased variance);
  * where the dump has one, the --bf16-peer group: layout, its loss against its output, its
    lrs, and a bf16-sized distance from the reference.

Usage: /usr/bin/python3 tests/twin/check_twin.py [--dump TWIN.h5] [--keep DIR]
Without --dump it makes its own dumps (r18 64x64 batch 2) in a temporary directory.
Exit status 0 when every check passes, 1 otherwise. Runs in about 12-20 s on 2 cores.
"""

import argparse
import copy
import math
import os
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kinks  # noqa: E402
import twin_model  # noqa: E402
import unet_twin as tw  # noqa: E402

failures = []


def check(ok, what):
    print("  %-4s %s" % ("ok" if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-20)
    return float(np.max(np.abs(got - want))) / scale if want.size else 0.0


# --------------------------------------------------------------------------- schedule
def reference_lr(step, max_lr, frac, total):
    """Written independently of unet_twin.one_cycle_lr, straight from the spec."""
    lo = max_lr / 25.0
    end = lo * 1e-4
    w = int(frac * total + 0.5)  # lround for non-negative values
    if w < 1:
        w = 1
    if step < w:
        return lo + (max_lr - lo) * step / w
    p = min(1.0, (step - w) / max(1, total - w))
    return end + (max_lr - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def check_schedule():
    print("lr schedule")
    lr = tw.one_cycle_lr
    m = 3e-3
    for frac, total in ((0.3, 10), (0.25, 10), (0.05, 7), (0.0, 5), (0.3, 1), (0.1, 1000)):
        warmup = max(1, int(math.floor(frac * total + 0.5)))
        vals = [lr(s, m, frac, total) for s in range(total + 1)]
        ok = abs(vals[0] - m / 25) <= 1e-15 * m
        ok &= abs(lr(warmup, m, frac, total) - m) <= 1e-15 * m
        if total > warmup:  # p == 1 reaches the final lr
            ok &= abs(vals[total] - m / 25 / 1e4) <= 1e-12 * m
        ok &= all(a < b for a, b in zip(vals[:warmup], vals[1:warmup + 1]))
        ok &= all(a > b for a, b in zip(vals[warmup:], vals[warmup + 1:]))
        ok &= all(abs(v - reference_lr(s, m, frac, total)) <= 1e-15 * m for s, v in enumerate(vals))
        if total - warmup >= 2 and (total - warmup) % 2 == 0:  # cosine midpoint
            mid = warmup + (total - warmup) // 2
            ok &= abs(vals[mid] - (m + m / 25 / 1e4) / 2) <= 1e-12 * m
        check(ok, "one_cycle_lr endpoints/monotone, warmup_fraction %g total_steps %d (warmup %d)"
              % (frac, total, warmup))
    # warm-up rounding is half away from zero like C's lround: 0.25*10 = 2.5 -> 3, not 2
    check(lr(2, m, 0.25, 10) < m and lr(3, m, 0.25, 10) == m, "warm-up 2.5 steps rounds to 3")
    check(lr(0, m, 0.05, 7) == m / 25 and lr(1, m, 0.05, 7) == m, "warm-up at least 1 step")
    check(lr(50, m, 0.3, 10) == lr(10, m, 0.3, 10), "lr stays final after total_steps")


# --------------------------------------------------------------------------- dump helpers
def load(path):
    f = h5py.File(path, "r")
    a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return f, a


def model_from_dump(f, a, dtype=torch.float32):
    model = twin_model.UNet(a["arch"], int(a["classes"]))
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(torch.from_numpy(f["params"][n][()]))
        for n, b in tw.named_buffers_to_dump(model):
            b.copy_(torch.from_numpy(f["buffers"][n][()]))
    return model.to(dtype).train()


def numpy_weighted_ce(logits, labels, weights):
    """Mean weighted cross-entropy over non-ignored pixels, float64 numpy."""
    z = logits.astype(np.float64).transpose(0, 2, 3, 1).reshape(-1, logits.shape[1])
    y = labels.reshape(-1).astype(np.int64)
    keep = y != tw.IGNORE_INDEX
    z, y = z[keep], y[keep]
    zmax = z.max(1, keepdims=True)
    logp = z - zmax - np.log(np.exp(z - zmax).sum(1, keepdims=True))
    w = weights.astype(np.float64)[y]
    return float(-(w * logp[np.arange(len(y)), y]).sum() / w.sum())


def check_dump_layout(f, a):
    print("dump layout")
    model = twin_model.UNet(a["arch"], int(a["classes"]))
    names = [n for n, _ in model.named_parameters()]
    bufs = [n for n, _ in tw.named_buffers_to_dump(model)]
    ok = all(n in f["params"] and n in f["grads"] and n in f["after/params"] for n in names)
    ok &= all(n in f["buffers"] and n in f["after/buffers"] for n in bufs)
    ok &= len(f["params"]) == len(names) and len(f["buffers"]) == len(bufs)
    check(ok, "%d parameters and %d buffers present under params/grads/buffers/after"
          % (len(names), len(bufs)))
    must = ("encoder.conv1.weight", "encoder.layer2.0.downsample.0.weight",
            "encoder.layer2.0.downsample.1.running_var", "decoder.blocks.0.conv1.0.weight",
            "decoder.blocks.4.conv2.1.bias", "segmentation_head.0.bias")
    check(all(n in names + bufs for n in must), "torchvision/smp names, e.g. " + ", ".join(must))
    n, h, w, k = (int(a[x]) for x in ("batch", "height", "width", "classes"))
    check(f["input"].shape == (n, 3, h, w) and f["output"].shape == (n, k, h, w)
          and f["labels"].shape == (n, h, w) and f["labels"].dtype == np.uint8
          and f["after/losses"].shape == (int(a["steps"]),), "dataset shapes and dtypes")
    lab = f["labels"][()]
    frac = float((lab == 255).mean())
    check(0.02 < frac < 0.08 and lab[lab != 255].max() < k, "labels: %.1f%% ignored, classes < K"
          % (100 * frac))
    # initial weights: reproducible from the seed, and the stated init distributions
    fresh = twin_model.build_model(a["arch"], k, int(a["seed"]))
    if "peer_bf16" not in f:  # the twin moved away from ReLU and pool kinks (kinks.py)
        x = tw.make_batch(n, h, w, k, int(a["seed"]))[0]
        kinks.away_from_kinks([copy.deepcopy(fresh).double(), fresh], x.double(), lambda m: None)
    same = all(np.array_equal(p.detach().numpy(), f["params"][nm][()])
               for nm, p in fresh.named_parameters())
    check(same, "initial parameters reproduce from --seed (and the moves away from kinks)")
    enc = f["params"]["encoder.layer3.0.conv1.weight"][()]   # 256x128x3x3, fan_out 2304
    dec = f["params"]["decoder.blocks.1.conv1.0.weight"][()]  # 128x384x3x3, fan_in 3456
    head = f["params"]["segmentation_head.0.weight"][()]
    ok = abs(enc.std() / math.sqrt(2 / (256 * 9)) - 1) < 0.02
    ok &= abs(np.abs(dec).max() / math.sqrt(6 / (384 * 9)) - 1) < 0.01 and abs(dec.mean()) < 1e-3
    ok &= np.abs(head).max() <= math.sqrt(6 / (16 * 9 + k * 9))
    ok &= not f["params"]["segmentation_head.0.bias"][()].any()
    ok &= (f["params"]["encoder.bn1.weight"][()] == 1).all() and (f["buffers"]["encoder.bn1.running_var"][()] == 1).all()
    check(bool(ok), "init: encoder kaiming-normal fan_out, decoder kaiming-uniform fan_in, "
          "head xavier, BN 1/0")


def check_loss(f):
    print("loss")
    want = float(f["loss"][()])
    got = numpy_weighted_ce(f["output"][()], f["labels"][()], f["class_weights"][()])
    check(abs(got - want) <= 1e-5 * abs(want), "numpy weighted CE of /output %.7f vs /loss %.7f"
          % (got, want))
    cw = f["class_weights"][()]
    check(cw[0] == 1.0 and (cw[1:] == 2.0).all(), "class weights 1 for background, 2 for others")


def check_peer(f, a):
    """The /peer_bf16 group (--bf16-peer): the root's layout, a loss consistent with its own
    output, the root's lrs, and bf16-sized (not larger) distance from the root's run."""
    print("bf16 peer")
    p = f["peer_bf16"]
    ok = all(p[k].shape == f[k].shape and p[k].dtype == f[k].dtype
             for k in ("output", "loss", "grad_norm", "after/losses", "after/lrs"))
    for group in ("grads", "after/params", "after/buffers"):
        ok &= sorted(p[group]) == sorted(f[group]) and all(
            p[group][n].shape == f[group][n].shape and p[group][n].dtype == np.float32
            for n in f[group])
    check(bool(ok), "same datasets, shapes and dtypes as the reference")
    want = float(p["loss"][()])
    got = numpy_weighted_ce(p["output"][()], f["labels"][()], f["class_weights"][()])
    check(abs(got - want) <= 1e-5 * abs(want), "numpy weighted CE of its output %.7f vs its loss "
          "%.7f" % (got, want))
    norm = math.sqrt(sum(float(np.sum(p["grads"][n][()].astype(np.float64) ** 2))
                         for n in p["grads"]))
    check(abs(norm - p["grad_norm"][()]) <= 1e-5 * norm, "grad_norm is the norm of its grads")
    check(np.array_equal(p["after/lrs"][()], f["after/lrs"][()]), "same lrs as the reference")
    out = rel_err(p["output"][()], f["output"][()])
    loss = abs(want - float(f["loss"][()])) / float(f["loss"][()])
    # measured 0.08-0.11 where the CPU has bf16 instructions, 0.41 on an AVX2-only one
    check(1e-4 < out < 0.6 and loss < 1e-2, "output max-rel %.1e and loss rel %.1e against the "
          "reference: bf16-sized" % (out, loss))


def rel_l2(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want)) / max(float(np.linalg.norm(want)), 1e-30)


def check_gradients(f, a, elements, seed, finite_differences=True):
    """Finite differences are checked against float64 autograd (tight), and the dumped
    gradients against float64 autograd. A float32 dump is compared loosely: a float32
    forward flips a few ReLU masks (pre-activations within ~1e-6 of 0) and that alone
    moves some gradient tensors by up to ~1e-1 of their max (1e-2 in L2). A dump made with
    --dtype float64 must agree to float32 rounding."""
    print("gradients (float64 model)")
    torch.manual_seed(seed)
    model = model_from_dump(f, a, torch.float64)
    x = torch.from_numpy(f["input"][()]).double()
    labels = torch.from_numpy(f["labels"][()])
    weights = torch.from_numpy(f["class_weights"][()]).double()
    f64_dump = a.get("dtype", "float32") == "float64"

    def loss_fn():
        return tw.segmentation_loss(model(x), labels, weights)

    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    base = float(loss)
    check(abs(float(loss) - float(f["loss"][()])) <= 1e-5 * abs(float(loss)),
          "float64 loss %.9f vs dump %.9f" % (float(loss), float(f["loss"][()])))
    params = dict(model.named_parameters())
    maxrel = sorted((rel_err(f["grads"][n][()], p.grad.numpy()), n) for n, p in params.items())[-1]
    l2 = sorted((rel_l2(f["grads"][n][()], p.grad.numpy()), n) for n, p in params.items())[-1]
    if f64_dump:
        check(maxrel[0] < 1e-5, "dumped (float64-computed) grads vs float64 autograd: worst "
              "max-rel %.2e (%s)" % maxrel)
    else:
        check(l2[0] < 5e-2, "dumped float32 grads vs float64 autograd: worst L2-rel %.2e (%s), "
              "worst max-rel %.2e (%s) [ReLU-flip noise]" % (l2 + maxrel))
    norm64 = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params.values()))
    tol = 1e-6 if f64_dump else 1e-2
    check(abs(norm64 - float(f["grad_norm"][()])) <= tol * norm64,
          "grad_norm %.6f vs float64 %.6f" % (float(f["grad_norm"][()]), norm64))

    if not finite_differences:
        return
    rng = np.random.default_rng(seed)
    names = list(params)
    picks = ["segmentation_head.0.bias", "encoder.conv1.weight"]
    picks += [names[i] for i in rng.choice(len(names), elements, replace=False)]
    # small step: a perturbed weight moves many pre-activations, and every ReLU / max-pool
    # kink crossed biases the difference quotient in proportion to h
    h = 1e-7
    with torch.no_grad():
        for n in picks:
            p = params[n]
            g64 = p.grad.view(-1)
            scale = float(g64.abs().max())
            # one random element, and the element with the largest gradient
            for idx in (int(rng.integers(p.numel())), int(g64.abs().argmax())):
                flat = p.view(-1)
                orig = float(flat[idx])
                flat[idx] = orig + h
                up = float(loss_fn())
                flat[idx] = orig - h
                down = float(loss_fn())
                flat[idx] = orig
                fd = (up - down) / (2 * h)
                g = float(g64[idx])
                gd = float(f["grads"][n][()].reshape(-1)[idx])
                tol = 1e-4 * scale + 1e-4 * abs(fd) + 5e-8
                ok = abs(fd - g) <= tol
                note = ""
                if not ok:
                    # a ReLU / max-pool kink within h (common for encoder.conv1 on big
                    # inputs): then the one-sided quotients bracket the derivative
                    right, left = (up - base) / h, (base - down) / h
                    ok = min(left, right) - tol <= g <= max(left, right) + tol
                    note = "  kink: one-sided %+.6e %+.6e bracket it" % (left, right)
                check(ok, "finite difference %-40s[%6d]: fd %+.6e autograd %+.6e dump %+.6e%s"
                      % (n, idx, fd, g, gd, note))


# --------------------------------------------------------------------------- optimiser replay
def check_optimizer(f, a):
    """Re-runs the dump's trajectory with the twin's own code (torch optimiser, lr, clipping)
    and, at every step, predicts that step's parameters with an independent numpy
    clipping + Adam/AdamW from the same gradients and the numpy moments. Each step is
    compared on its own (numpy is then reset to torch's parameters): over several Adam
    steps two correct implementations drift apart elementwise (Adam normalises every
    element to ~lr, so near-cancelling moments flip signs), so only per-step predictions
    can be compared tightly. The re-run must then reproduce the dump's after/ data."""
    print("optimiser replay (%s, clip_norm %g, %d steps)" % (a["optimizer"], a["clip_norm"],
                                                            int(a["steps"])))
    torch.use_deterministic_algorithms(True)
    dtype = torch.float64 if a.get("dtype", "float32") == "float64" else torch.float32
    torch.backends.mkldnn.enabled = not bool(a.get("no_mkldnn", 0))
    model = model_from_dump(f, a, dtype)
    x = torch.from_numpy(f["input"][()]).to(dtype)
    labels = torch.from_numpy(f["labels"][()])
    weights = torch.from_numpy(f["class_weights"][()]).to(dtype)
    b1, b2, eps = float(a["beta1"]), float(a["beta2"]), float(a["eps"])
    wd, clip = float(a["weight_decay"]), float(a["clip_norm"])
    adamw = a["optimizer"] == "adamw"
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    opt = tw.make_optimizer(model, a["optimizer"], 0.0, (b1, b2), eps, wd)
    m = {n: np.zeros(params[n].shape) for n in names}
    v = {n: np.zeros(params[n].shape) for n in names}
    losses, lrs, clipped, worst = [], [], 0, (0.0, "")
    steps = int(a["steps"])
    for t in range(1, steps + 1):
        model.train()
        model.zero_grad(set_to_none=True)
        loss = tw.segmentation_loss(model(x), labels, weights)
        loss.backward()
        losses.append(float(loss))
        before = {n: params[n].detach().numpy().astype(np.float64) for n in names}
        grads = {n: params[n].grad.numpy().astype(np.float64) for n in names}
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        # the twin's code path
        tnorm = tw.grad_total_norm(model)
        tw.clip_gradients(model, tnorm, clip)
        lr_t = tw.one_cycle_lr(t - 1, float(a["max_lr"]), float(a["warmup_fraction"]),
                               int(a["total_steps"]))
        for group in opt.param_groups:
            group["lr"] = lr_t
        opt.step()
        # independent numpy prediction
        if clip > 0 and norm > clip:
            clipped += 1
            grads = {n: g * (clip / (norm + 1e-6)) for n, g in grads.items()}
        lr = reference_lr(t - 1, float(a["max_lr"]), float(a["warmup_fraction"]),
                          int(a["total_steps"]))
        lrs.append(lr)
        unit = 2.0 ** -23 if dtype == torch.float32 else 2.0 ** -52
        for n in names:
            p, g = before[n], grads[n]
            if adamw:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            denom = np.sqrt(v[n]) / math.sqrt(1 - b2 ** t) + eps
            p = p - lr / (1 - b1 ** t) * m[n] / denom
            got = params[n].detach().numpy().astype(np.float64)
            # the update is ~lr per element. Allowed: the rounding of p to the twin's
            # precision, and the rounding of the gradient Adam sees (g, or g + wd*p, with
            # Adam's wd*p much larger than g) amplified by 1/denom.
            g_in = np.abs(grads[n]) + (0.0 if adamw else wd * np.abs(before[n]))
            slack = np.abs(before[n]) * unit + lr / (1 - b1 ** t) * 2 * unit * g_in / denom
            miss = np.maximum(np.abs(got - p) - slack, 0.0)
            e = float(miss.max()) / max(float(np.abs(p - before[n]).max()), 1e-30)
            if e > worst[0]:
                worst = (e, "%s step %d" % (n, t))
    check(abs(norm - tnorm) <= 1e-9 * norm, "twin grad_total_norm is the float64 L2 norm")
    check(worst[0] < 1e-4, "per-step updates vs numpy %s: worst max-rel %.2e (%s)"
          % ("AdamW" if adamw else "Adam", worst[0], worst[1]))
    check(rel_err(lrs, f["after/lrs"][()]) < 1e-12, "lrs per step %s" %
          np.array2string(np.asarray(lrs), precision=4))
    check(rel_err(losses, f["after/losses"][()]) < 1e-6, "losses per step %s" %
          np.array2string(np.asarray(losses), precision=6))
    e = max((rel_err(params[n].detach().numpy(), f["after/params"][n][()]), n) for n in names)
    check(e[0] < 1e-6, "re-run reproduces after/params: worst %.2e (%s)" % e)
    e = max((rel_err(b.numpy(), f["after/buffers"][n][()]), n)
            for n, b in tw.named_buffers_to_dump(model))
    check(e[0] < 1e-6, "re-run reproduces after/buffers (BN running stats): worst %.2e (%s)" % e)
    check_running_stats(f, a)
    if clip > 0:
        check(clipped > 0, "clipping was exercised (%d of %d steps)" % (clipped, steps))


def check_running_stats(f, a):
    """BN running statistics after one train-mode forward, by hand for encoder.bn1:
    momentum 0.1, running_var updated with the unbiased batch variance."""
    model = model_from_dump(f, a, torch.float64)
    x = torch.from_numpy(f["input"][()]).double()
    with torch.no_grad():
        z = model.encoder.conv1(x)
        model.encoder.bn1(z)
    zn = z.numpy()
    mean = zn.mean(axis=(0, 2, 3))
    var = zn.var(axis=(0, 2, 3), ddof=1)
    rm = 0.9 * f["buffers"]["encoder.bn1.running_mean"][()].astype(np.float64) + 0.1 * mean
    rv = 0.9 * f["buffers"]["encoder.bn1.running_var"][()].astype(np.float64) + 0.1 * var
    ok = rel_err(model.encoder.bn1.running_mean.numpy(), rm) < 1e-9
    ok &= rel_err(model.encoder.bn1.running_var.numpy(), rv) < 1e-9
    check(ok, "BN running stats: momentum 0.1, unbiased running_var")


def make_dump(directory, name, extra):
    path = os.path.join(directory, name)
    tw.main(["--out", path] + extra)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dump", help="check this dump instead of making fresh ones")
    p.add_argument("--keep", help="write the fresh dumps here instead of a temp directory")
    p.add_argument("--elements", type=int, default=5,
                   help="random parameter tensors for finite differences (2 elements each)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    check_schedule()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or tmp
        if args.keep:
            os.makedirs(directory, exist_ok=True)
        if args.dump:
            dumps = [(args.dump, True)]
        else:
            dumps = [(make_dump(directory, "check_adamw.h5", ["--bf16-peer"]), True),
                     (make_dump(directory, "check_adam_f64.h5",
                                ["--optimizer", "adam", "--clip-norm", "0", "--steps", "2",
                                 "--seed", "3", "--max-lr", "3e-3", "--warmup", "0.25",
                                 "--dtype", "float64", "--height", "32", "--width", "64"]),
                      False)]
        for path, full in dumps:
            print("== %s" % path)
            f, a = load(path)
            with f:
                check_dump_layout(f, a)
                check_loss(f)
                if "peer_bf16" in f:
                    check_peer(f, a)
                t0 = time.perf_counter()
                check_gradients(f, a, args.elements, args.seed, finite_differences=full)
                print("  (%.1f s)" % (time.perf_counter() - t0))
                if int(a["steps"]) > 0:
                    t0 = time.perf_counter()
                    check_optimizer(f, a)
                    print("  (%.1f s)" % (time.perf_counter() - t0))
    print("%d check(s) failed" % len(failures) if failures else "all twin checks passed",
          "in %.1f s" % (time.perf_counter() - start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
