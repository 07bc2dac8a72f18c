#!/usr/bin/python3
"""PyTorch peer of bench/kernels_conv.cpp: the same layers (batch 128, 32x32, float) timed in
PyTorch on the CPU: forward, backward-data, backward-filter (+ bias) through
aten.convolution_backward with one output mask at a time, the fused backward (both gradients),
and forward + backward through autograd as training runs it. Random normal inputs, one warm-up
call excluded, median of --repeats.
Usage: /usr/bin/python3 bench/kernels_conv_torch.py [--repeats N] [--threads T] [--stat min]
       [--clock cpu]"""
import argparse
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=7)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--batch", type=int, default=128)
parser.add_argument("--stat", choices=("median", "min"), default="median")
parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time / threads (A/B tests on a busy machine)")
args = parser.parse_args()
torch.set_num_threads(args.threads)


def now_ms():
    if args.clock == "cpu":
        return time.process_time() * 1e3 / torch.get_num_threads()
    return time.perf_counter() * 1e3


def median_ms(fn):
    fn()
    times = []
    for _ in range(args.repeats):
        t0 = now_ms()
        fn()
        times.append(now_ms() - t0)
    return min(times) if args.stat == "min" else sorted(times)[len(times) // 2]


def time_layer(name, c, k, r, groups):
    n, pad = args.batch, r // 2
    x = torch.randn(n, c, 32, 32)
    w = torch.randn(k, c // groups, r, r)
    b = torch.randn(k)
    dy = torch.randn(n, k, 32, 32)
    cb = torch.ops.aten.convolution_backward

    def bwd(mask):
        return lambda: cb(dy, x, w, [k], [1, 1], [pad, pad], [1, 1], False, [0, 0], groups, mask)

    t = {
        "fwd": median_ms(lambda: torch.nn.functional.conv2d(x, w, b, 1, pad, 1, groups)),
        "bwd_data": median_ms(bwd([True, False, False])),
        "bwd_filter": median_ms(bwd([False, True, True])),
        "bwd_both": median_ms(bwd([True, True, True])),
    }
    # What training runs: autograd forward + backward (input gradient only when it is needed).
    xg = x.clone().requires_grad_(c != 3)
    wg, bg = w.clone().requires_grad_(), b.clone().requires_grad_()

    def train():
        torch.nn.functional.conv2d(xg, wg, bg, 1, pad, 1, groups).backward(dy)

    t["autograd"] = median_ms(train)
    gflop = 2.0 * n * k * 32 * 32 * (c // groups) * r * r * 1e-9
    print(f"{name:<22} " + "  ".join(f"{t[key]:9.2f} {gflop / t[key] * 1e3:7.1f}"
                                     for key in t if key != "autograd") +
          f"  {t['autograd']:9.2f} ms", flush=True)
    return t


print(f"torch {torch.__version__} conv layers, float, batch {args.batch}, 32x32, "
      f"{torch.get_num_threads()} threads, {args.stat} of {args.repeats}, {args.clock} time")
print(f"{'layer':<22} {'fwd ms':>9} {'GF/s':>7}  {'bwd-d ms':>9} {'GF/s':>7}  {'bwd-f ms':>9} "
      f"{'GF/s':>7}  {'bwd-both':>9} {'GF/s':>7}  {'fwd+bwd autograd':>17}")
conv1 = time_layer("conv1 3->128 3x3", 3, 128, 3, 1)
conv2 = time_layer("conv2-4 128->128 3x3", 128, 128, 3, 1)
dw1 = time_layer("dw1 3ch 3x3", 3, 3, 3, 3)
pw1 = time_layer("pw1 3->128 1x1", 3, 128, 1, 1)
dw2 = time_layer("dw2-4 128ch 3x3", 128, 128, 3, 128)
pw2 = time_layer("pw2-4 128->128 1x1", 128, 128, 1, 1)


def step(split):
    def full(t):
        return t["fwd"] + (t["bwd_data"] + t["bwd_filter"] if split else t["bwd_both"])
    normal = conv1["fwd"] + conv1["bwd_filter"] + 3 * full(conv2)
    depsep = dw1["fwd"] + dw1["bwd_filter"] + full(pw1) + 3 * (full(dw2) + full(pw2))
    return normal, depsep


for label, split in (("separate bwd-data + bwd-filter", True), ("fused backward", False)):
    normal, depsep = step(split)
    print(f"conv time per training step ({label}): normal {normal:.1f} ms, depsep {depsep:.1f} ms")
# Autograd (layer 1's input needs no gradient: its "autograd" time already skips it).
normal = conv1["autograd"] + 3 * conv2["autograd"]
depsep = dw1["autograd"] + pw1["autograd"] + 3 * (dw2["autograd"] + pw2["autograd"])
print(f"conv time per training step (autograd fwd+bwd): normal {normal:.1f} ms, "
      f"depsep {depsep:.1f} ms")
