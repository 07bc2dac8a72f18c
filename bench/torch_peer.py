#!/usr/bin/python3
"""The PyTorch peer: the seed article's two CIFAR-10 models (normal vs depthwise-separable), timed
training steps on random data (`steps`) and the seed's training recipe on the real image folder
(`train`), written as JSON lines that bench/plot.py reads.

Models: 4 x [Conv2d(3x3, 128, padding 1, bias) | DepSep(depthwise 3x3 no bias + pointwise 1x1 with
bias)] + ReLU at 32x32, MaxPool2d(4), BatchNorm2d(128, eps=1e-3, momentum=0.01 = Keras' 0.99),
Flatten (NCHW order, 8192), Linear(8192, 10); He-uniform init; softmax cross-entropy; Adam (lr 1e-3,
betas 0.9/0.999, eps 1e-7). Parameter counts are checked against Keras' (BN moving mean/var
included): 528,778 / 135,973, trainable 528,522 / 135,717.

Works with Debian's PyTorch 1.13 (CPU) and PyTorch 2.x (CUDA). Run with /usr/bin/python3.
  torch_peer.py steps --model normal --batch 128 --device cpu --threads 2
  torch_peer.py train --model depsep --data /work/shared/cifar10 --epochs 5 --device cuda \
      --precision amp --log runs/torch_depsep.jsonl
"""

import argparse
import contextlib
import datetime
import importlib.util
import json
import math
import os
import shlex
import statistics
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

# Keras' counts (model.summary()), BN moving mean/var included.
KERAS_PARAMS = {"normal": (528778, 528522), "depsep": (135973, 135717)}


class UsageError(Exception):
    pass


# ---- Models ------------------------------------------------------------------------------------

class DepSep(nn.Module):
    """Keras SeparableConv2D: depthwise 3x3 (groups = C, no bias), then pointwise 1x1 with bias."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=True)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def build_model(kind: str) -> nn.Sequential:
    layers = []
    cin = 3
    for _ in range(4):
        conv = nn.Conv2d(cin, 128, 3, padding=1, bias=True) if kind == "normal" else DepSep(cin, 128)
        layers += [conv, nn.ReLU(inplace=True)]
        cin = 128
    layers += [nn.MaxPool2d(4), nn.BatchNorm2d(128, eps=1e-3, momentum=0.01), nn.Flatten(),
               nn.Linear(128 * 8 * 8, 10)]
    return nn.Sequential(*layers)


def _uniform_(t: torch.Tensor, limit: float):
    with torch.no_grad():
        t.uniform_(-limit, limit)


def init_weights(model: nn.Module, scheme: str):
    """he_uniform: every conv/linear weight ~ U(+-sqrt(6 / fan_in)) with Keras' fans: fan_in =
    in/groups * kh * kw, except a depthwise kernel's, kh * kw * C as Keras computes it for its
    (kh, kw, C, 1) shape (the brief's recipe, as layers/models.h implements it). seed: what the seed's Keras code actually ran -- its SeparableConv2D got
    `kernel_initializer=he_uniform`, which that layer ignores, so depthwise and pointwise kernels
    used Keras' default glorot_uniform with Keras' fans (depthwise: fan_in = 9 C, fan_out = 9;
    pointwise: fan_in = C, fan_out = K); Conv2D and Dense used he_uniform. Biases are zero."""
    for m in model.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        w = m.weight
        fan_in = w.shape[1] * (w[0][0].numel() if w.dim() > 2 else 1)
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            # Keras computes a depthwise kernel's (kh, kw, C, 1) fan-in as kh * kw * C; the
            # framework's DepthwiseConv2d does the same, so both start from the same distribution.
            fan_in = m.kernel_size[0] * m.kernel_size[1] * m.in_channels
        limit = math.sqrt(6.0 / fan_in)
        if scheme == "seed" and isinstance(m, nn.Conv2d) and (m.groups > 1 or m.kernel_size == (1, 1)):
            rf = m.kernel_size[0] * m.kernel_size[1]
            if m.groups > 1:  # Keras depthwise kernel (kh, kw, C, 1)
                keras_in, keras_out = rf * m.in_channels, rf * (m.out_channels // m.groups)
            else:  # Keras pointwise kernel (1, 1, C, K)
                keras_in, keras_out = rf * m.in_channels, rf * m.out_channels
            limit = math.sqrt(6.0 / (keras_in + keras_out))
        _uniform_(w, limit)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def keras_param_counts(model: nn.Module):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            total += m.running_mean.numel() + m.running_var.numel()
    return total, trainable


def make_model(kind: str, device: torch.device, channels_last: bool, init: str) -> nn.Module:
    model = build_model(kind)
    init_weights(model, init)
    total, trainable = keras_param_counts(model)
    want_total, want_trainable = KERAS_PARAMS[kind]
    assert (total, trainable) == (want_total, want_trainable), (
        f"{kind}: {total:,} params ({trainable:,} trainable), Keras has {want_total:,} "
        f"({want_trainable:,})")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: nn.Module):
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


def make_scaler(enabled: bool):
    # torch.amp.GradScaler("cuda", ...) in 2.x; torch.cuda.amp.GradScaler (deprecated there) in 1.x.
    kwargs = dict(init_scale=2.0 ** 16, growth_interval=2000, enabled=enabled)
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", **kwargs)
    return torch.cuda.amp.GradScaler(**kwargs)


def autocast(device: torch.device, precision: str):
    if precision != "amp":  # CPU autocast rejects fp16 even when disabled (PyTorch 1.13)
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


# ---- Shared helpers ----------------------------------------------------------------------------

def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    return shlex.join([sys.executable] + sys.argv)


def setup(args) -> torch.device:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to this PyTorch "
                         f"({torch.__version__})")
    if args.precision == "amp" and args.device != "cuda":
        raise UsageError("--precision amp needs --device cuda (fp16 autocast + GradScaler)")
    if args.threads is None and args.device == "cpu":
        args.threads = 2
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def environment(device: torch.device) -> dict:
    env = {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()]}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda_version"] = torch.version.cuda
        env["cudnn_version"] = torch.backends.cudnn.version()
        env["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        env["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return env


class GpuSampler:
    """Mean SM and memory utilisation (NVML, percent) between start() and stop(), sampled every
    50 ms on a thread, as the seed reports them; None where NVML (pynvml) or a GPU is missing."""

    def __init__(self, device):
        self.handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        except Exception:  # no pynvml, no driver: utilisation is "n/a"
            self.handle = None

    def start(self):
        import threading
        self.samples, self.stop_flag = [], threading.Event()
        if self.handle is None:
            return

        def run():
            while not self.stop_flag.wait(0.05):
                u = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
                self.samples.append((u.gpu, u.memory))
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        """(sm %, memory %) means, or (None, None)."""
        if self.handle is None:
            return None, None
        self.stop_flag.set()
        self.thread.join()
        if not self.samples:
            return None, None
        return (statistics.mean(s for s, _ in self.samples),
                statistics.mean(m for _, m in self.samples))


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def emit(record: dict, path):
    line = json.dumps(record)
    print(line, flush=True)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a") as f:
            f.write(line + "\n")


class TrainStep:
    """forward + backward + Adam step, with fp16 autocast and loss scaling under --precision amp."""

    def __init__(self, model, device, precision):
        self.model, self.device, self.precision = model, device, precision
        self.opt = make_optimizer(model)
        self.scaler = make_scaler(precision == "amp")

    def __call__(self, x, y):
        with autocast(self.device, self.precision):
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach(), logits.detach()


# ---- steps: timed training steps on random data -------------------------------------------------

def cmd_steps(args):
    device = setup(args)
    on_gpu = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (20 if on_gpu else 3)
    iters = args.iters if args.iters is not None else (100 if on_gpu else 10)
    repeats = args.repeats if args.repeats is not None else 5 if on_gpu else 3
    for name, v in (("--warmup", warmup), ("--iters", iters), ("--repeats", repeats)):
        if v < (0 if name == "--warmup" else 1):
            raise UsageError(f"{name} must be {'>= 0' if name == '--warmup' else '>= 1'}, got {v}")

    model = make_model(args.model, device, args.channels_last, args.init)
    model.train()
    if args.compile:
        if not hasattr(torch, "compile"):
            raise UsageError(f"--compile: torch.compile needs PyTorch 2, this is {torch.__version__}")
        model = torch.compile(model)  # compiled during the warm-up steps
    step = TrainStep(model, device, args.precision)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (args.batch,), device=device)

    for _ in range(warmup):
        step(x, y)
    sync(device)
    step_ms, ips = [], []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            step(x, y)
        sync(device)
        dt = time.perf_counter() - t0
        step_ms.append(1e3 * dt / iters)
        ips.append(args.batch * iters / dt)
    total, trainable = keras_param_counts(model)
    record = {
        "framework": "pytorch", "bench": "steps", "model": args.model, "device": args.device,
        "batch": args.batch, "precision": args.precision, "channels_last": args.channels_last,
        "compile": args.compile, "init": args.init, "params": total, "trainable_params": trainable,
        "warmup": warmup, "iters": iters, "repeats": repeats,
        "images_per_sec": statistics.median(ips), "step_ms_median": statistics.median(step_ms),
        "images_per_sec_repeats": ips, "step_ms_repeats": step_ms,
        **environment(device), "date": now_iso(), "command": command_line(),
    }
    print(f"pytorch {args.model} {args.device} {args.precision} batch {args.batch} threads "
          f"{record['threads']}: {record['images_per_sec']:.1f} img/s median "
          f"({', '.join(f'{v:.1f}' for v in ips)}), {record['step_ms_median']:.2f} ms/step",
          file=sys.stderr)
    emit(record, args.out)


# ---- train: the seed's recipe on the CIFAR-10 image folder --------------------------------------

def read_pngs_pil(paths):
    from PIL import Image

    images = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        if img.shape != (32, 32, 3):
            raise UsageError(f"--data: '{path}' is {img.shape}, expected 32x32 RGB")
        images[i] = img
    return images


def read_pngs_numpy(paths, size: int = 32):
    """Decoder for 8-bit RGB, non-interlaced size x size PNGs (CIFAR-10's files) with zlib and
    numpy alone, for machines without PIL: every file's rows are inflated, then the PNG row
    filters (none, sub, up, average, paeth) are undone for all images at once, pixel by pixel."""
    n, row_bytes = len(paths), 3 * size
    raw = np.empty((n, size, 1 + row_bytes), dtype=np.uint8)
    for i, path in enumerate(paths):
        with open(path, "rb") as f:
            data = f.read()
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            raise UsageError(f"--data: '{path}' is not a PNG file")
        pos, idat = 8, []
        while pos + 8 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "big")
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            if kind == b"IHDR":
                w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
                if (w, h, depth, color, interlace) != (size, size, 8, 2, 0):
                    raise UsageError(f"--data: '{path}' is {w}x{h}, bit depth {depth}, colour type "
                                     f"{color}, interlace {interlace}; expected {size}x{size} "
                                     "8-bit RGB, not interlaced")
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
            pos += 12 + length
        raw[i] = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(size, -1)
    filters = raw[:, :, 0].astype(np.int32)
    if filters.max(initial=0) > 4:
        raise UsageError("--data: a PNG row uses an unknown filter type")
    out = np.empty((n, size, row_bytes), dtype=np.int32)
    zero = np.zeros((n, 3), dtype=np.int32)
    prev = np.zeros((n, row_bytes), dtype=np.int32)
    for r in range(size):
        ft = filters[:, r:r + 1]
        cur = raw[:, r, 1:].astype(np.int32)
        rec = out[:, r]
        for x in range(0, row_bytes, 3):
            a = rec[:, x - 3:x] if x else zero  # left
            b = prev[:, x:x + 3]  # up
            c = prev[:, x - 3:x] if x else zero  # up-left
            p = a + b - c
            pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
            paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
            pred = np.select([ft == 1, ft == 2, ft == 3, ft == 4], [a, b, (a + b) >> 1, paeth], 0)
            rec[:, x:x + 3] = (cur[:, x:x + 3] + pred) & 255
        prev = rec
    return out.reshape(n, size, size, 3).astype(np.uint8)


def read_binary_split(root: str, split: str):
    """The official binary layout (what `pack` writes): data_batch_1..5.bin / test_batch.bin,
    records of 1 label byte + 3072 CHW pixel bytes. None when `root` holds no such files."""
    names = ["test_batch.bin"] if split == "test" else [f"data_batch_{i}.bin" for i in range(1, 6)]
    paths = [os.path.join(root, n) for n in names]
    if not all(os.path.isfile(p) for p in paths):
        return None
    raw = np.concatenate([np.fromfile(p, dtype=np.uint8) for p in paths])
    if raw.size % 3073:
        raise UsageError(f"--data: the {split} .bin files in '{root}' are not whole 3073-byte records")
    rec = raw.reshape(-1, 3073)
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), rec[:, 0].astype(np.int64)


def balanced_subset(labels, limit: int, classes: int = 10):
    """The framework's subset (data::subset, `train --limit-train N`): round robin over the
    classes in label order, each class's images in data set order, the chosen ones kept in data
    set order."""
    members = [np.flatnonzero(labels == c) for c in range(classes)]
    chosen, taken, r = [], 0, 0
    while taken < limit:
        for m in members:
            if r < len(m) and taken < limit:
                chosen.append(m[r])
                taken += 1
        r += 1
    return np.sort(np.asarray(chosen, dtype=np.int64))


def load_split(root: str, split: str, limit, rng: np.random.Generator, decoder: str = "auto",
               subset: str = "random"):
    """uint8 images (N, 32, 32, 3) and int64 labels, from the binary layout or the image folder
    (class order); `limit` images chosen at random (all classes) when given, or with
    subset="balanced" the framework's class-balanced subset (the same images `train
    --limit-train` takes)."""
    binary = read_binary_split(root, split)
    if binary is not None:
        images, labels = binary
        index = np.arange(len(labels))
        if limit is not None and limit < len(labels):
            if subset == "balanced":
                index = balanced_subset(labels, limit)
            else:
                index = np.sort(rng.permutation(len(labels))[:limit])
        return images[index], labels[index]
    files, labels = [], []
    for label, cls in enumerate(CIFAR10_CLASSES):
        folder = os.path.join(root, split, cls)
        if not os.path.isdir(folder):
            raise UsageError(f"--data: '{folder}' is missing (expected {{train,test}}/<class>/"
                             "*.png with classes " + " ".join(CIFAR10_CLASSES) + ")")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
        files += [os.path.join(folder, n) for n in names]
        labels += [label] * len(names)
    if not files:
        raise UsageError(f"--data: no PNG files under '{os.path.join(root, split)}'")
    index = np.arange(len(files))
    if limit is not None and limit < len(files):
        if subset == "balanced":
            index = balanced_subset(np.asarray(labels), limit, len(CIFAR10_CLASSES))
        else:
            index = np.sort(rng.permutation(len(files))[:limit])
    paths = [files[j] for j in index]
    if decoder == "auto":
        decoder = "pil" if importlib.util.find_spec("PIL") else "numpy"
    images = read_pngs_pil(paths) if decoder == "pil" else read_pngs_numpy(paths)
    return images, np.asarray(labels, dtype=np.int64)[index]


def to_device_nchw(images: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)


def normalize(batch_u8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = batch_u8.float() / 127.5 - 1.0
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate(model, images, labels, args, device):
    """Loss and accuracy in eval mode (BN moving statistics), the article's "Train Acc." way."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for i in range(0, images.shape[0], args.eval_batch):
        x = normalize(images[i:i + args.eval_batch], args.channels_last)
        y = labels[i:i + args.eval_batch]
        with autocast(device, args.precision):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = images.shape[0]
    return loss_sum.item() / n, correct.item() / n


def cmd_train(args):
    device = setup(args)
    for name in ("epochs", "warmup_steps", "warmup_epochs", "eval_batch"):
        v = getattr(args, name)
        if v < (0 if name.startswith("warmup") else 1):
            raise UsageError(f"--{name.replace('_', '-')} must be "
                             f"{'>= 0' if name.startswith('warmup') else '>= 1'}, got {v}")
    for name in ("limit_train", "limit_test"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
    if not os.path.isdir(args.data):
        raise UsageError(f"--data: '{args.data}' is not a folder (expected the CIFAR-10 image "
                         "folder, e.g. /work/shared/cifar10)")
    if os.path.exists(args.log):
        raise UsageError(f"--log: '{args.log}' already exists; choose a new file")

    rng = np.random.default_rng(args.seed)
    t_load = time.perf_counter()
    train_x, train_y = load_split(args.data, "train", args.limit_train, rng, args.png_decoder,
                                  args.subset)
    test_x, test_y = load_split(args.data, "test", args.limit_test, rng, args.png_decoder,
                                args.subset)
    load_s = time.perf_counter() - t_load
    print(f"loaded {len(train_y)} train / {len(test_y)} test images in {load_s:.1f} s",
          file=sys.stderr)
    train_x, test_x = to_device_nchw(train_x, device), to_device_nchw(test_x, device)
    train_y = torch.from_numpy(train_y).to(device)
    test_y = torch.from_numpy(test_y).to(device)
    n = train_x.shape[0]

    model = make_model(args.model, device, args.channels_last, args.init)
    step = TrainStep(model, device, args.precision)
    total, trainable = keras_param_counts(model)
    env = environment(device)
    common = {"framework": "pytorch", "model": args.model, "device": args.device,
              "precision": args.precision, "batch": args.batch}
    emit({"type": "header", **common, "params": total, "trainable_params": trainable,
          "epochs": args.epochs, "n_train": n, "n_test": int(test_x.shape[0]),
          "optimizer": "adam lr 1e-3 betas 0.9/0.999 eps 1e-7",
          "loss_scale": "dynamic, init 2^16, growth interval 2000" if args.precision == "amp"
          else None,
          "channels_last": args.channels_last, "init": args.init, "seed": args.seed,
          "warmup_steps": args.warmup_steps, "data": os.path.abspath(args.data),
          "load_s": load_s, **env, "date": now_iso(), "command": command_line()}, args.log)

    steps_per_epoch = (n + args.batch - 1) // args.batch
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    epoch_ips, epoch_util = [], []
    sampler = GpuSampler(device)
    t_run = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        sync(device)
        t_epoch = time.perf_counter()
        sampler.start()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        data_wait = 0.0
        steps = 0
        t_timed, timed_images = None, 0
        # Epoch 1's first steps (allocation, autotuning) are left out; at least one step is timed.
        skip = min(args.warmup_steps, steps_per_epoch - 1) if epoch == 1 else 0
        for i in range(0, n, args.batch):
            if steps == skip:
                sync(device)
                t_timed = time.perf_counter()
            t0 = time.perf_counter()
            idx = perm[i:i + args.batch]
            x = normalize(train_x[idx], args.channels_last)
            y = train_y[idx]
            data_wait += time.perf_counter() - t0
            loss, logits = step(x, y)
            loss_sum += loss.float() * y.shape[0]
            correct += (logits.argmax(1) == y).sum()
            steps += 1
            if t_timed is not None:
                timed_images += y.shape[0]
        sync(device)
        t_end = time.perf_counter()
        sm_util, mem_util = sampler.stop()
        epoch_util.append((sm_util, mem_util))
        ips = timed_images / (t_end - t_timed) if t_timed is not None and timed_images else None
        epoch_ips.append(ips)
        test_loss, test_acc = evaluate(model, test_x, test_y, args, device)
        rec = {"type": "epoch", **common, "epoch": epoch,
               "train_loss": loss_sum.item() / n, "train_acc": correct.item() / n,
               "test_loss": test_loss, "test_acc": test_acc, "images_per_sec": ips,
               "timed_images": timed_images, "steps": steps, "untimed_steps": skip,
               "data_wait_s": data_wait, "sm_util": sm_util, "mem_util": mem_util,
               "wall_s": time.perf_counter() - t_epoch}
        emit(rec, args.log)
        print(f"epoch {epoch}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f}, "
              f"test loss {test_loss:.4f} acc {test_acc:.4f}, "
              f"{ips or float('nan'):.1f} img/s", file=sys.stderr)

    train_loss, train_acc = evaluate(model, train_x, train_y, args, device)
    test_loss, test_acc = evaluate(model, test_x, test_y, args, device)
    # "images/sec" as in the seed: the best epoch after the warm-up epochs.
    first = min(args.warmup_epochs, args.epochs - 1) + 1
    timed = [(e, v) for e, v in enumerate(epoch_ips, start=1) if e >= first and v is not None]
    util = [epoch_util[e - 1] for e, _ in timed if epoch_util[e - 1][0] is not None]
    summary = {"type": "summary", **common,
               "images_per_sec": max(v for _, v in timed) if timed else None,
               "peak_images_per_sec": max(v for _, v in timed) if timed else None,
               "median_images_per_sec": statistics.median(v for _, v in timed) if timed else None,
               "timed_epochs": [e for e, _ in timed],
               "train_acc": train_acc, "train_loss": train_loss,
               "test_acc": test_acc, "test_loss": test_loss,
               "params": total, "trainable_params": trainable,
               "sm_util": statistics.mean(u[0] for u in util) if util else None,
               "mem_util": statistics.mean(u[1] for u in util) if util else None,
               "gpu": env["gpu"] if device.type == "cuda" else None,
               "wall_s": time.perf_counter() - t_run, "date": now_iso(),
               "command": command_line()}
    emit(summary, args.log)
    print(f"summary: train acc {train_acc:.4f} (eval mode, whole training set), test acc "
          f"{test_acc:.4f}, peak {summary['peak_images_per_sec'] or float('nan'):.1f} img/s "
          f"over epochs {summary['timed_epochs']}", file=sys.stderr)


# ---- CLI ---------------------------------------------------------------------------------------

def add_common(p: argparse.ArgumentParser):
    p.add_argument("--model", choices=["normal", "depsep"], required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default 2 on cpu, PyTorch's default on cuda)")
    p.add_argument("--precision", choices=["fp32", "amp"], default="fp32",
                   help="amp = fp16 autocast + dynamic loss scaling (cuda only)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--init", choices=["he_uniform", "seed"], default="he_uniform",
                   help="he_uniform everywhere (default), or what the seed's Keras code ran "
                        "(glorot_uniform for the separable convs)")
    p.add_argument("--seed", type=int, default=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("steps", help="time training steps on random data")
    add_common(s)
    s.add_argument("--warmup", type=int, default=None, help="untimed steps (cpu 3, cuda 20)")
    s.add_argument("--iters", type=int, default=None, help="steps per repeat (cpu 10, cuda 100)")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats (cpu 3, cuda 5)")
    s.add_argument("--out", default=None, help="also append the JSON line to this file")
    s.add_argument("--compile", action="store_true",
                   help="torch.compile the model (compiled during the warm-up steps)")
    s.set_defaults(func=cmd_steps)

    t = sub.add_parser("train", help="the seed's training recipe on the CIFAR-10 image folder")
    add_common(t)
    t.add_argument("--data", required=True,
                   help="CIFAR-10 folder: {train,test}/<class>/*.png, or the binary batches")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--limit-train", type=int, default=None, help="subset of N images")
    t.add_argument("--limit-test", type=int, default=None, help="subset of N images")
    t.add_argument("--subset", choices=["random", "balanced"], default="random",
                   help="how --limit-train/--limit-test choose: at random (seeded by --seed), or "
                        "the framework's class-balanced subset (the images train --limit-train N "
                        "takes)")
    t.add_argument("--warmup-steps", type=int, default=5,
                   help="steps of epoch 1 left out of images/sec")
    t.add_argument("--warmup-epochs", type=int, default=2,
                   help="epochs left out of the summary's peak/median images/sec (the seed: 2)")
    t.add_argument("--eval-batch", type=int, default=1000)
    t.add_argument("--png-decoder", choices=["auto", "pil", "numpy"], default="auto",
                   help="PIL when installed (auto), or the built-in zlib + numpy decoder")
    t.add_argument("--log", required=True, help="JSON-lines log to write (must not exist)")
    t.set_defaults(func=cmd_train)

    args = ap.parse_args(argv)
    try:
        args.func(args)
    except UsageError as e:
        ap.exit(2, f"torch_peer.py {args.cmd}: error: {e}\n")


if __name__ == "__main__":
    main()
