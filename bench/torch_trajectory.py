#!/usr/bin/env python3
"""Replays the training steps written by build/bin/trajectory in PyTorch (same initial weights,
same batches, same recipe: Adam lr 1e-3 betas 0.9/0.999 eps 1e-7, x/127.5 - 1, BatchNorm momentum
0.99 / eps 1e-3 in Keras' convention) and prints both loss curves side by side with the relative
difference. f32 on the CPU, in float64 with --double (then the difference is ours-f32 rounding).

    build/bin/trajectory --model depsep --steps 40 --out /tmp/traj
    /usr/bin/python3 bench/torch_trajectory.py /tmp/traj [--json OUT.jsonl]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import build_model, make_optimizer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder written by build/bin/trajectory")
    ap.add_argument("--double", action="store_true", help="replay in float64")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on CPUs)")
    ap.add_argument("--json", default=None, help="also write one JSON line per step here")
    ap.add_argument("--torch-init", type=int, default=None, metavar="SEED",
                    help="start from PyTorch's own he_uniform draw (torch.manual_seed(SEED)) "
                         "instead of our initial weights: separates the initial draw from the rest")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, "params.json")) as f:
        meta = json.load(f)
    flat = np.fromfile(os.path.join(args.dir, "params.bin"), dtype=np.float32)
    images = np.fromfile(os.path.join(args.dir, "images.bin"), dtype=np.uint8)
    labels = np.fromfile(os.path.join(args.dir, "labels.bin"), dtype=np.uint8)
    ours = [json.loads(line) for line in open(os.path.join(args.dir, "ours.jsonl"))]
    dtype = torch.float64 if args.double else torch.float32

    model = build_model(meta["model"]).to(dtype)
    params = list(model.parameters())
    if len(params) != len(meta["params"]):
        sys.exit(f"error: {len(meta['params'])} parameters in params.json, the PyTorch model has {len(params)}")
    offset = 0
    with torch.no_grad():
        for p, m in zip(params, meta["params"]):
            if list(p.shape) != m["shape"]:
                sys.exit(f"error: parameter {m['name']} has shape {m['shape']}, PyTorch's {list(p.shape)}")
            n = p.numel()
            p.copy_(torch.from_numpy(flat[offset:offset + n].reshape(p.shape)).to(dtype))
            offset += n
    if offset != flat.size:
        sys.exit(f"error: params.bin holds {flat.size} floats, the parameters need {offset}")
    if args.torch_init is not None:
        from torch_peer import init_weights
        torch.manual_seed(args.torch_init)
        init_weights(model, "he_uniform")
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model)
    model.train()
    batch = labels.size // len(ours)
    x_all = torch.from_numpy(images.reshape(-1, 3, 32, 32))
    y_all = torch.from_numpy(labels.astype(np.int64))
    out = open(args.json, "w") if args.json else None
    sums = [0.0, 0.0]
    print(f"{'step':>4} {'ours loss':>10} {'pytorch':>10} {'rel diff':>9}   {'ours acc':>8} {'pytorch':>7}")
    for s, rec in enumerate(ours):
        x = x_all[s * batch:(s + 1) * batch].to(dtype) / 127.5 - 1.0
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y_all[s * batch:(s + 1) * batch]
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        acc = (logits.argmax(1) == y).float().mean().item()
        rel = abs(rec["loss"] - loss.item()) / abs(loss.item())
        print(f"{s + 1:>4} {rec['loss']:>10.6f} {loss.item():>10.6f} {rel:>9.2e}   {rec['acc']:>8.4f} {acc:>7.4f}")
        sums[0] += rec["loss"]
        sums[1] += loss.item()
        if out:
            out.write(json.dumps({"step": s + 1, "ours_loss": rec["loss"], "pytorch_loss": loss.item(),
                                  "rel_diff": rel, "ours_acc": rec["acc"], "pytorch_acc": acc}) + "\n")

    n = len(ours)
    print(f"mean loss over {n} steps: ours {sums[0] / n:.4f}, pytorch {sums[1] / n:.4f}")

    # BatchNorm's running statistics and the test split in eval mode.
    final = json.load(open(os.path.join(args.dir, "ours_final.json")))
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    for name, t in (("running_mean", bn.running_mean), ("running_var", bn.running_var)):
        a, b = np.asarray(final["bn." + name]), t.detach().double().numpy()
        print(f"bn.{name}: ours {a[:3].round(6)}, pytorch {b[:3].round(6)}, ..., "
              f"max |ours - pytorch| / max |pytorch| = "
              f"{np.abs(a - b).max() / np.abs(b).max():.2e}")
    tx = torch.from_numpy(np.fromfile(os.path.join(args.dir, "test_images.bin"), dtype=np.uint8)
                          .reshape(-1, 3, 32, 32))
    ty = torch.from_numpy(np.fromfile(os.path.join(args.dir, "test_labels.bin"), dtype=np.uint8)
                          .astype(np.int64))
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ty), 1000):
            x = tx[i:i + 1000].to(dtype) / 127.5 - 1.0
            logits = model(x)
            loss_sum += F.cross_entropy(logits, ty[i:i + 1000], reduction="sum").item()
            correct += (logits.argmax(1) == ty[i:i + 1000]).sum().item()
    print(f"test (eval mode): ours loss {final['test_loss']:.4f} acc {final['test_acc']:.4f}, "
          f"pytorch loss {loss_sum / len(ty):.4f} acc {correct / len(ty):.4f}")


if __name__ == "__main__":
    main()
