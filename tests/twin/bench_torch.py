#!/usr/bin/python3
"""PyTorch side of the benchmark: the twin's U-Net (tests/twin/twin_model.py) timed the way
the C engine's `bench` times itself, on synthetic data.

Training step: forward (train mode), weighted cross-entropy, backward, gradient clipping
to norm 1, AdamW (weight decay 1e-4) with the one-cycle lr. Inference batch: eval-mode
forward under torch.no_grad() and argmax over classes. `--warmup` untimed training steps,
then `--steps` timed ones; one untimed inference batch, then `--infer-batches` timed ones.
`--bf16`: both forwards run under torch.autocast(device, dtype=torch.bfloat16) (parameters
and optimiser stay float32); the training loss is computed in float32 on the logits.
`--device cuda`: on the GPU, with cudnn.benchmark on, TF32 off for fp32 (as the C engine's
fp32), fused AdamW, each step ending with the loss read back and each inference batch with its
predictions copied to the host (as the C engine's bench does); `--compile MODE` wraps the model
in torch.compile(mode=MODE) (e.g. max-autotune), compiled during the warm-up steps; its eval
graph is compiled by the first untimed inference batch, and with --compile three batches stay
untimed, so that the CUDA graphs a mode may record (warm-up run, then recording) are not timed.
`warmup_s` is the time of the untimed steps and batches: the compilation shows there.

Prints ONE line on stdout:
  engine=pytorch arch=r34 height=288 width=192 batch=8 threads=2 train_img_s=<x>
  infer_img_s=<y> train_step_s=<s> infer_batch_s=<s> channels_last=<0|1> mkldnn=<0|1>
  precision=<fp32|bf16> warmup_s=<s>
and the torch version, build BLAS and the BLAS / oneDNN libraries actually loaded to stderr.

  /usr/bin/python3 tests/twin/bench_torch.py --arch r34 --height 288 --width 192 --batch 8 \\
      --threads 2 [--classes 59] [--warmup 2] [--steps 5] [--infer-batches 5] [--channels-last]
      [--bf16] [--device cpu|cuda] [--compile MODE]
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_model  # noqa: E402
import unet_twin as tw  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch U-Net training/inference throughput",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", choices=sorted(twin_model.ARCH_LAYERS), default="r34")
    p.add_argument("--height", type=int, default=288)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--classes", type=int, default=59)
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps")
    p.add_argument("--steps", type=int, default=5, help="timed training steps")
    p.add_argument("--infer-batches", type=int, default=5, help="timed inference batches")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--bf16", action="store_true",
                   help="forward under CPU autocast to bfloat16 (loss in float32)")
    p.add_argument("--no-mkldnn", action="store_true",
                   help="disable oneDNN convolutions (native im2col + BLAS)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--compile", default="", metavar="MODE",
                   help="torch.compile mode (default, reduce-overhead, max-autotune); empty: eager")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.height % 32 or args.width % 32:
        p.error("--height and --width must be multiples of 32")
    if args.steps < 1 or args.infer_batches < 1 or args.warmup < 0:
        p.error("--steps and --infer-batches must be >= 1, --warmup >= 0")
    return args


def loaded_libraries(keys=("blas", "lapack", "dnnl", "mkl", "gomp", "omp")):
    found = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if "/" in line else ""
                name = os.path.basename(path)
                if path.startswith("/") and any(k in name for k in keys):
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(found)


def describe_build(args):
    config = torch.__config__.show()
    blas = [part.strip().replace("- Build settings: ", "")
            for line in config.splitlines() for part in line.split(",")
            if "BLAS_INFO" in part or "LAPACK_INFO" in part]
    dnn = [line.strip(" -") for line in config.splitlines() if "MKL-DNN" in line or "oneDNN" in line]
    err = sys.stderr
    print("torch %s, threads %d, mkldnn %s, channels_last %d, bf16 autocast %d, device %s, "
          "compile %s" % (
              torch.__version__, torch.get_num_threads(),
              "on" if torch.backends.mkldnn.enabled else "off", args.channels_last, args.bf16,
              args.device, args.compile or "no"), file=err)
    if args.device == "cuda":
        print("cuda %s, cudnn %s, %s" % (torch.version.cuda, torch.backends.cudnn.version(),
                                         torch.cuda.get_device_name()), file=err)
    print("torch build: %s; %s" % (", ".join(blas), "; ".join(dnn)), file=err)
    print("loaded: %s" % ", ".join(loaded_libraries()), file=err)


def main(argv=None):
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    torch.manual_seed(args.seed)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    device = torch.device(args.device)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    model = twin_model.build_model(args.arch, args.classes, args.seed).to(device, memory_format=fmt)
    x = torch.randn(args.batch, 3, args.height, args.width).to(device).contiguous(
        memory_format=fmt)
    labels = torch.randint(0, args.classes, (args.batch, args.height, args.width),
                           dtype=torch.uint8).to(device)
    weights = tw.class_weights_for(args.classes).to(device)
    forward = torch.compile(model, mode=args.compile) if args.compile else model
    # fused AdamW on the GPU: PyTorch's fastest optimiser step there, as the C engine's is fused
    fused = {"fused": True} if args.device == "cuda" else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=1e-4, **fused)
    total_steps = args.warmup + args.steps
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16)
    describe_build(args)

    model.train()
    train_seconds = 0.0
    warmup_seconds = 0.0
    for step in range(total_steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = forward(x)
        loss = tw.segmentation_loss(logits.float(), labels, weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in optimizer.param_groups:
            group["lr"] = tw.one_cycle_lr(step, 1e-3, 0.1, total_steps)
        optimizer.step()
        loss_value = loss.item()  # waits for the step, as the C engine's does
        if step >= args.warmup:
            train_seconds += time.perf_counter() - start
        else:
            warmup_seconds += time.perf_counter() - start
    if not loss_value == loss_value:
        print("bench_torch: loss is NaN", file=sys.stderr)

    model.eval()
    infer_seconds = 0.0
    untimed_batches = 3 if args.compile else 1
    with torch.no_grad(), autocast:
        for b in range(untimed_batches + args.infer_batches):
            start = time.perf_counter()
            predictions = forward(x).argmax(1).to(torch.uint8).cpu()
            if b >= untimed_batches:
                infer_seconds += time.perf_counter() - start
            else:
                warmup_seconds += time.perf_counter() - start
    del predictions

    train_img_s = args.batch * args.steps / train_seconds
    infer_img_s = args.batch * args.infer_batches / infer_seconds
    print("engine=pytorch arch=%s height=%d width=%d batch=%d threads=%d train_img_s=%.3f "
          "infer_img_s=%.3f train_step_s=%.3f infer_batch_s=%.3f channels_last=%d mkldnn=%d "
          "precision=%s warmup_s=%.1f"
          % (args.arch, args.height, args.width, args.batch, torch.get_num_threads(),
             train_img_s, infer_img_s, train_seconds / args.steps,
             infer_seconds / args.infer_batches, int(args.channels_last),
             int(not args.no_mkldnn), "bf16" if args.bf16 else "fp32", warmup_seconds))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
