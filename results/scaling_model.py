#!/usr/bin/env python3
"""Step-time model of data-parallel U-Net training on 8-GPU nodes: compute plus the part of the
gradient all-reduce that bucketing cannot hide under the backward pass. Prints the tables of
results/scaling_model.md; every assumption is an option.

usage: /usr/bin/python3 results/scaling_model.py [--tflops 50] [--grad-bytes 4] ...
"""
import argparse
import math


def unet_layers(arch, classes, height, width):
    """(name, parameters, multiply-adds per image) of every convolution, in forward order, as
    segmentation_models_pytorch's Unet and src/model/unet_build.c build it (BatchNorm weight and bias counted
    with the convolution before it)."""
    layers = []

    def conv(name, cin, cout, kernel, h, w, batch_norm=True, bias=False):
        params = cin * cout * kernel * kernel + (cout if bias else 0) + (2 * cout if batch_norm else 0)
        layers.append((name, params, h * w * cin * cout * kernel * kernel))

    h, w = height // 2, width // 2
    conv("encoder.conv1", 3, 64, 7, h, w)
    h, w = h // 2, w // 2  # max pool
    cin = 64
    blocks = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3)}[arch]
    for stage, (count, cout) in enumerate(zip(blocks, (64, 128, 256, 512))):
        for block in range(count):
            if stage > 0 and block == 0:
                h, w = h // 2, w // 2
            name = f"encoder.layer{stage + 1}.{block}"
            conv(name + ".conv1", cin, cout, 3, h, w)
            conv(name + ".conv2", cout, cout, 3, h, w)
            if cin != cout:
                conv(name + ".downsample", cin, cout, 1, h, w)
            cin = cout
    for block, (skip, cout) in enumerate(zip((256, 128, 64, 64, 0), (256, 128, 64, 32, 16))):
        h, w = h * 2, w * 2
        conv(f"decoder.blocks.{block}.conv1", cin + skip, cout, 3, h, w)
        conv(f"decoder.blocks.{block}.conv2", cout, cout, 3, h, w)
        cin = cout
    conv("segmentation_head", cin, classes, 3, h, w, batch_norm=False, bias=True)
    return layers


def ring(bytes_, ranks, bandwidth, latency):
    """Ring all-reduce: reduce-scatter then all-gather, 2(n-1) steps of S/n bytes each."""
    return 2 * (ranks - 1) / ranks * bytes_ / bandwidth + 2 * (ranks - 1) * latency


def tree(bytes_, ranks, bandwidth, latency):
    """Pipelined (double binary) tree: about 2 S / B, with log2(n) hops up and down."""
    return 2 * bytes_ / bandwidth + 2 * math.log2(ranks) * latency


def hierarchical_allreduce(bytes_, nodes, a):
    """Reduce-scatter over the node's NVLink, all-reduce of each GPU's 1/g shard between nodes
    (the g GPUs of a node in parallel, each on its own NIC; ring or tree, whichever is faster),
    all-gather over NVLink."""
    g = a.gpus_per_node
    intra = 2 * ((g - 1) / g * bytes_ / a.nvlink + (g - 1) * a.nvlink_latency)
    shard = bytes_ / g
    inter = 0.0
    if nodes > 1:
        inter = min(ring(shard, nodes, a.ib, a.ib_latency), tree(shard, nodes, a.ib, a.ib_latency))
    return a.launch + intra + inter


def flat_ring_allreduce(bytes_, nodes, a):
    """One ring over every GPU, each GPU's traffic on its own NIC once the job spans nodes: what a
    topology-unaware all-reduce costs."""
    ranks = nodes * a.gpus_per_node
    if nodes == 1:
        return a.launch + ring(bytes_, ranks, a.nvlink, a.nvlink_latency)
    return a.launch + ring(bytes_, ranks, a.ib, a.ib_latency)


def compute(layers, a):
    """Per GPU and step, in seconds: forward, backward, AdamW; and the gradient buckets as
    (time in the backward pass when ready, bytes)."""
    rate = a.tflops * 1e12
    forward = sum(2 * macs for _, _, macs in layers) * a.batch / rate
    # Backward runs the layers in reverse (2x the forward work: data and weight gradients); a
    # layer's gradient is ready when its backward ends. Gradients fill buckets in that order
    # (PyTorch DDP's scheme).
    clock, pending, buckets = 0.0, 0, []
    for _, params, macs in reversed(layers):
        clock += 4 * macs * a.batch / rate
        pending += params * a.grad_bytes
        if pending >= a.bucket_mb * 1e6:
            buckets.append((clock, pending))
            pending = 0
    if pending:
        buckets.append((clock, pending))
    optimizer = sum(p for _, p, _ in layers) * a.optimizer_bytes / (a.hbm * 1e12)
    return forward, clock, optimizer, buckets


def communication_cost(buckets, backward, nodes, a):
    """Time communication adds to a step. A full bucket's all-reduce starts at once on the
    communication stream, after the previous bucket's; what runs past the end of the backward
    pass is exposed (the last bucket, at least). The hidden part still slows the backward pass
    by the overlap slowdown (NCCL's kernels take SMs and memory bandwidth from it)."""
    end, busy = 0.0, 0.0
    for ready, size in buckets:
        duration = hierarchical_allreduce(size, nodes, a)
        end = max(end, ready) + duration
        busy += duration
    exposed = max(0.0, end - backward)
    return exposed + a.overlap_slowdown * (busy - exposed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="r34")
    parser.add_argument("--classes", type=int, default=59, help="CCP with the ccp59 label map")
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--batch", type=int, default=8, help="images per GPU per step")
    parser.add_argument("--tflops", type=float, default=50,
                        help="achieved training throughput per GPU, TFLOP/s")
    parser.add_argument("--grad-bytes", type=int, default=4, help="bytes per gradient element")
    parser.add_argument("--bucket-mb", type=float, default=25, help="all-reduce bucket, MB")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--nvlink", type=float, default=360e9,
                        help="NVLink bytes/s per GPU per direction achieved by NCCL")
    parser.add_argument("--ib", type=float, default=40e9,
                        help="InfiniBand bytes/s per GPU (its own NIC) per direction achieved")
    parser.add_argument("--nvlink-latency", type=float, default=1e-6, help="s per ring step")
    parser.add_argument("--ib-latency", type=float, default=5e-6, help="s per inter-node hop")
    parser.add_argument("--launch", type=float, default=10e-6, help="s per collective call")
    parser.add_argument("--hbm", type=float, default=2.7, help="achieved HBM TB/s (optimizer)")
    parser.add_argument("--optimizer-bytes", type=int, default=28,
                        help="AdamW bytes moved per parameter (read p g m v, write p m v, fp32)")
    parser.add_argument("--overlap-slowdown", type=float, default=0.1,
                        help="compute slowdown while an all-reduce runs beside it")
    parser.add_argument("--nodes", default="1,2,4,8,16,32,64")
    a = parser.parse_args()

    # The parameter counts build/train prints (6-class dataset) check the layer table.
    for arch, expected in (("r18", 14328934), ("r34", 24437094)):
        counted = sum(p for _, p, _ in unet_layers(arch, 6, 64, 64))
        assert counted == expected, f"{arch}: {counted} parameters, train prints {expected}"

    layers = unet_layers(a.arch, a.classes, a.height, a.width)
    params = sum(p for _, p, _ in layers)
    macs = sum(m for _, _, m in layers)
    forward, backward, optimizer, buckets = compute(layers, a)
    single = forward + backward + optimizer
    gradient = params * a.grad_bytes
    print(f"U-Net {a.arch}, {a.classes} classes, {a.height}x{a.width}: {params:,} parameters, "
          f"gradient {gradient / 1e6:.1f} MB; {2 * macs / 1e9:.1f} GFLOP forward, "
          f"{6 * macs / 1e9:.1f} GFLOP per image per training step")
    print(f"batch {a.batch} per GPU at {a.tflops:g} TFLOP/s: forward {forward * 1e3:.2f} ms, "
          f"backward {backward * 1e3:.2f} ms, AdamW {optimizer * 1e3:.2f} ms = "
          f"{single * 1e3:.2f} ms ({a.batch / single:.0f} img/s per GPU without communication); "
          f"{len(buckets)} buckets of <= {a.bucket_mb:g} MB\n")
    print("| nodes | GPUs | all-reduce, hierarchical (ms) | all-reduce, flat ring (ms) | "
          "added by communication (ms) | step (ms) | img/s | efficiency | efficiency, no overlap |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for nodes in (int(n) for n in a.nodes.split(",")):
        whole = hierarchical_allreduce(gradient, nodes, a)
        total = single + communication_cost(buckets, backward, nodes, a)
        gpus = nodes * a.gpus_per_node
        print(f"| {nodes} | {gpus} | {whole * 1e3:.2f} | "
              f"{flat_ring_allreduce(gradient, nodes, a) * 1e3:.2f} | "
              f"{(total - single) * 1e3:.2f} | {total * 1e3:.2f} | {gpus * a.batch / total:,.0f} | "
              f"{single / total:.1%} | {single / (single + whole):.1%} |")

    # Where the efficiency falls under 90% at the largest node count: faster compute (better
    # kernels, CUDA graphs) or slower networks shrink the backward pass that hides communication.
    nodes = int(a.nodes.split(",")[-1])
    rates, networks = (50, 100, 200, 400), (40e9, 20e9, 10e9)
    print(f"\nEfficiency at {nodes} nodes by achieved TFLOP/s per GPU (rows) and InfiniBand per GPU "
          "(columns, GB/s achieved):\n")
    print("| TFLOP/s | " + " | ".join(f"IB {ib / 1e9:g}" for ib in networks) + " |")
    print("|---:|" + "---:|" * len(networks))
    for rate in rates:
        cells = []
        for ib in networks:
            case = argparse.Namespace(**{**vars(a), "tflops": rate, "ib": ib})
            forward, backward, optimizer, buckets = compute(layers, case)
            alone = forward + backward + optimizer
            efficiency = alone / (alone + communication_cost(buckets, backward, nodes, case))
            cells.append(f"{efficiency:.1%}" + (" *" if efficiency < 0.9 else ""))
        print(f"| {rate} | " + " | ".join(cells) + " |")
    print("\n(* under 90%)")


if __name__ == "__main__":
    main()
