#!/usr/bin/python3
"""The PyTorch peer of `bench layer`: the seed's single-layer microbenchmark in PyTorch, the same
layers and shapes, so the two can be put side by side in one run on one machine.

Kinds: normal = Conv2d(C, K, MxM, bias); depsep = depthwise Conv2d(C, C, MxM, groups=C, no bias)
then pointwise Conv2d(C, K, 1x1, bias) (no activation, like the seed). Inputs and weights are
random normal (never zeros), in both memory formats (NCHW and channels_last) unless one is
chosen. cudnn.benchmark is on (the counterpart of our per-shape algorithm search). Forward only
under no_grad by default; --backward times forward + backward (dx and every weight gradient).
Warm-up excluded; each repeat runs enough iterations to last --min-time seconds, timed with CUDA
events on the GPU (the host clock on the CPU); the median over --repeats is reported.

  bench/layer_torch.py --device cuda --dtype fp16 --batch 1,16 --json out.jsonl
  bench/layer_torch.py --device cpu --dtype fp32 --size 32 --padding same --batch 4 --min-time 0.1
Prints a table; --json appends one JSON line per (kind, batch, memory format) with the fields of
`bench layer`'s rows that apply (framework "pytorch").
"""

import argparse
import datetime
import json
import shlex
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--dtype", choices=["fp16", "fp32"], default=None,
                   help="default fp16 on cuda, fp32 on cpu")
    p.add_argument("--size", type=int, default=224, help="input height = width")
    p.add_argument("--channels", type=int, default=128, help="input channels C")
    p.add_argument("--filters", type=int, default=128, help="output channels K")
    p.add_argument("--kernel", type=int, default=3, help="kernel size M = N")
    p.add_argument("--padding", default="valid", help="valid | same | P (pixels per side)")
    p.add_argument("--batch", default="1,16", help="batch sizes, comma-separated")
    p.add_argument("--kinds", default="normal,depsep", help="normal and/or depsep")
    p.add_argument("--memory-format", choices=["both", "nchw", "channels_last"], default="both")
    p.add_argument("--backward", action="store_true", help="forward + backward")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (cpu only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="append the rows as JSON lines to this file")
    a = p.parse_args(argv)
    a.dtype = a.dtype or ("fp16" if a.device == "cuda" else "fp32")
    try:
        a.batches = [int(b) for b in a.batch.split(",")]
    except ValueError:
        p.error(f"--batch: expected comma-separated integers, got '{a.batch}'")
    a.kind_list = a.kinds.split(",")
    for k in a.kind_list:
        if k not in ("normal", "depsep"):
            p.error(f"--kinds: expected normal and/or depsep, got '{k}'")
    if a.padding == "valid":
        a.pad = 0
    elif a.padding == "same":
        if a.kernel % 2 == 0:
            p.error("--padding same needs an odd --kernel")
        a.pad = a.kernel // 2
    else:
        try:
            a.pad = int(a.padding)
        except ValueError:
            p.error(f"--padding: expected valid, same or a number of pixels, got '{a.padding}'")
    bad = [f"{n} must be positive, got {v}" for n, v in
           (("--size", a.size), ("--channels", a.channels), ("--filters", a.filters),
            ("--kernel", a.kernel), ("--repeats", a.repeats)) if v <= 0]
    bad += [f"--batch: {b} is not a positive batch size" for b in a.batches if b <= 0]
    if a.size + 2 * a.pad < a.kernel:
        bad.append(f"--kernel {a.kernel} is larger than the padded input {a.size + 2 * a.pad}")
    if a.device == "cuda" and not torch.cuda.is_available():
        bad.append("--device cuda: PyTorch sees no GPU")
    if bad:
        p.error("; ".join(bad))
    return a


class Timer:
    """Seconds of device work between start() and stop()."""

    def __init__(self, device):
        self.cuda = device == "cuda"

    def start(self):
        if self.cuda:
            self.t0 = torch.cuda.Event(enable_timing=True)
            self.t1 = torch.cuda.Event(enable_timing=True)
            self.t0.record()
        else:
            self.h0 = time.perf_counter()

    def stop(self):
        if self.cuda:
            self.t1.record()
            self.t1.synchronize()
            return self.t0.elapsed_time(self.t1) / 1e3
        return time.perf_counter() - self.h0


def make_step(kind, a, batch, fmt, dev, dt, gen):
    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float32).to(dev, dt)

    x = randn(batch, a.channels, a.size, a.size)
    if kind == "normal":
        weights = [randn(a.filters, a.channels, a.kernel, a.kernel) * 0.05, randn(a.filters)]
    else:
        weights = [randn(a.channels, 1, a.kernel, a.kernel) * 0.3,
                   randn(a.filters, a.channels, 1, 1) * 0.1, randn(a.filters)]
    mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    x = x.contiguous(memory_format=mf)
    weights = [w.contiguous(memory_format=mf) if w.dim() == 4 else w for w in weights]

    def forward(x, ws):
        if kind == "normal":
            return F.conv2d(x, ws[0], ws[1], padding=a.pad)
        t = F.conv2d(x, ws[0], None, padding=a.pad, groups=a.channels)
        return F.conv2d(t, ws[1], ws[2])

    if not a.backward:
        def step():
            with torch.no_grad():
                forward(x, weights)
        return step
    x.requires_grad_(True)
    for w in weights:
        w.requires_grad_(True)
    with torch.no_grad():
        dy = torch.randn_like(forward(x, weights), dtype=torch.float32).to(dt)

    def step():
        y = forward(x, weights)
        torch.autograd.grad(y, [x] + weights, dy)
    return step


def measure(step, a):
    timer = Timer(a.device)
    for _ in range(3):  # warm-up: cuDNN algorithm search, allocator
        step()
    if a.device == "cuda":
        torch.cuda.synchronize()
    iters = 1
    while True:  # calibrate: enough iterations to last min_time
        timer.start()
        for _ in range(iters):
            step()
        t = timer.stop()
        if t >= a.min_time or iters >= 1 << 20:
            break
        iters = max(iters * 2, int(iters * a.min_time / max(t, 1e-9) * 1.1))
    per_iter = []
    for _ in range(a.repeats):
        timer.start()
        for _ in range(iters):
            step()
        per_iter.append(timer.stop() / iters)
    return per_iter, iters


def main(argv):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = True
    dev = torch.device(a.device)
    dt = torch.float16 if a.dtype == "fp16" else torch.float32
    gen = torch.Generator().manual_seed(a.seed)
    fmts = ["nchw", "channels_last"] if a.memory_format == "both" else [a.memory_format]
    out_size = (a.size + 2 * a.pad - a.kernel) + 1
    gpu = torch.cuda.get_device_name(0) if a.device == "cuda" else None
    command = "bench/layer_torch.py " + " ".join(shlex.quote(s) for s in argv)
    rows = []
    for batch in a.batches:
        for kind in a.kind_list:
            for fmt in fmts:
                row = dict(framework="pytorch", kind=kind, device=a.device, dtype=a.dtype,
                           batch=batch, channels=a.channels, filters=a.filters, height=a.size,
                           width=a.size, kernel=a.kernel, padding=a.padding,
                           direction="forward+backward" if a.backward else "forward",
                           memory_format=fmt, torch=torch.__version__,
                           cudnn=torch.backends.cudnn.version(), gpu=gpu,
                           date=datetime.datetime.now(datetime.timezone.utc)
                           .strftime("%Y-%m-%dT%H:%M:%SZ"), command=command)
                try:
                    step = make_step(kind, a, batch, fmt, dev, dt, gen)
                    per_iter, iters = measure(step, a)
                except torch.cuda.OutOfMemoryError:
                    row.update(status="oom")
                    rows.append(row)
                    torch.cuda.empty_cache()
                    continue
                med = statistics.median(per_iter)
                macs = out_size * out_size * (
                    a.kernel * a.kernel * a.channels * a.filters if kind == "normal" else
                    a.kernel * a.kernel * a.channels + a.channels * a.filters)
                passes = 3 if a.backward else 1
                row.update(status="ok", conv_per_sec=batch / med,
                           conv_per_sec_min=batch / max(per_iter),
                           conv_per_sec_max=batch / min(per_iter), seconds_per_batch=med,
                           tflops=2 * macs * passes * batch / med / 1e12,
                           tflops_mac=macs * passes * batch / med / 1e12,
                           iterations=iters, repeats=a.repeats, min_time=a.min_time)
                rows.append(row)
                if a.device == "cuda":
                    torch.cuda.empty_cache()
    print(f"PyTorch {torch.__version__} layer benchmark: {a.kernel}x{a.kernel}, {a.size}x{a.size},"
          f" C={a.channels}, K={a.filters}, padding {a.padding}, {a.dtype} on "
          f"{gpu or 'cpu'}, {'forward+backward' if a.backward else 'forward'}")
    print(f"{'kind':8} {'batch':>5} {'format':>13} {'conv/s':>10} {'(min - max)':>19} "
          f"{'ms/batch':>9} {'TFLOP/s':>8}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['kind']:8} {r['batch']:>5} {r['memory_format']:>13} {r['status']:>10}")
            continue
        rng = f"({r['conv_per_sec_min']:.0f} - {r['conv_per_sec_max']:.0f})"
        print(f"{r['kind']:8} {r['batch']:>5} {r['memory_format']:>13} {r['conv_per_sec']:>10.0f} "
              f"{rng:>19} {r['seconds_per_batch'] * 1e3:>9.3f} {r['tflops']:>8.2f}")
    if a.json:
        with open(a.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
