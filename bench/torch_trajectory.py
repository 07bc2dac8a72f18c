#!/usr/bin/env python3
"""Replays the epochs written by build/bin/trajectory in PyTorch: the same initial weights, the
same images in the same per-epoch orders, the same recipe (Adam lr 1e-3 betas 0.9/0.999 eps 1e-7,
x/127.5 - 1, BatchNorm momentum 0.99 / eps 1e-3 in Keras' convention) and the same evaluation of
the test split in eval mode after every epoch; prints where the two runs part, step by step and
epoch by epoch.

    build/bin/trajectory --model depsep --epochs 3 --limit-train 9984 --out /tmp/traj
    /usr/bin/python3 bench/torch_trajectory.py /tmp/traj [--channels-last] [--json OUT.jsonl]

Ablations, each separating one ingredient from the rest:
  --double             replay in float64 (then the difference is ours-f32 rounding)
  --torch-init SEED    start from PyTorch's own he_uniform draw instead of our initial weights
  --torch-orders SEED  shuffle each epoch with torch.randperm (as torch_peer.py train) instead of
                       our orders; --write-orders FILE writes those orders for trajectory --orders
                       (and --write-init FILE the --torch-init draw for trajectory --init)
  --adam keras         Keras' Adam arithmetic (eps added to sqrt(v), our optimizer's) instead of
                       torch.optim.Adam (eps added to sqrt(v_hat))
  --no-eval            no evaluation between epochs
A float-rounding baseline: --save-as DIR2 writes a replay as a trajectory folder; replaying DIR2
with other roundings (e.g. without --channels-last) compares PyTorch with itself.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import build_model, make_optimizer  # noqa: E402


class KerasAdam(torch.optim.Optimizer):
    """Adam as Keras (and our optimizer) computes it: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
    p -= lr_t m / (sqrt(v) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                lr_t = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.addcdiv_(st["m"], st["v"].sqrt().add_(group["eps"]), value=-lr_t)


def torch_orders(seed, epochs, n):
    gen = torch.Generator()
    gen.manual_seed(seed)
    return np.stack([torch.randperm(n, generator=gen).numpy() for _ in range(epochs)]).astype(np.int32)


def peer_init(kind, seed):
    """The initial model of `torch_peer.py train --seed SEED`, drawn in the same order: the seed
    first, then the layers' construction (their default initialisation consumes draws), then
    he_uniform with Keras' fans."""
    from torch_peer import init_weights
    torch.manual_seed(seed)
    model = build_model(kind)
    init_weights(model, "he_uniform")
    return model


def load_params(model, meta, flat, dtype):
    offset = 0
    with torch.no_grad():
        for p, m in zip(model.parameters(), meta["params"]):
            if list(p.shape) != m["shape"]:
                sys.exit(f"error: parameter {m['name']} has shape {m['shape']}, PyTorch's {list(p.shape)}")
            p.copy_(torch.from_numpy(flat[offset:offset + p.numel()].reshape(p.shape)).to(dtype))
            offset += p.numel()
    if offset != flat.size:
        sys.exit(f"error: the parameter file holds {flat.size} floats, the parameters need {offset}")


def flat_params(model):
    return np.concatenate([p.detach().float().contiguous().view(-1).numpy() for p in model.parameters()])


def start_save(path, d, meta, orders, model):
    """--save-as: a trajectory folder for this run (the data linked from d), so that another
    replay can be compared with it as with ours."""
    os.makedirs(path, exist_ok=True)
    for name in ("images.bin", "labels.bin", "test_images.bin", "test_labels.bin"):
        target = os.path.join(path, name)
        if os.path.lexists(target):
            os.remove(target)
        os.symlink(os.path.abspath(os.path.join(d, name)), target)
    orders.astype(np.int32).tofile(os.path.join(path, "orders.bin"))
    flat_params(model).tofile(os.path.join(path, "params.bin"))
    with open(os.path.join(path, "params.json"), "w") as f:
        json.dump(meta, f, indent=1)


def param_gap(model, meta, flat):
    """Relative L2 distance ||ours - pytorch|| / ||pytorch|| of every parameter tensor."""
    gaps, offset = {}, 0
    for p, m in zip(model.parameters(), meta["params"]):
        ours = flat[offset:offset + p.numel()].astype(np.float64)
        theirs = p.detach().double().contiguous().view(-1).numpy()
        gaps[m["name"]] = float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-30))
        offset += p.numel()
    return gaps


@torch.no_grad()
def evaluate(model, tx, ty, batch, dtype, channels_last):
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(ty), batch):
        x = tx[i:i + batch].to(dtype) / 127.5 - 1.0
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, ty[i:i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == ty[i:i + batch]).sum().item()
    model.train()
    return loss_sum / len(ty), correct / len(ty)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder written by build/bin/trajectory")
    ap.add_argument("--double", action="store_true", help="replay in float64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on CPUs)")
    ap.add_argument("--json", default=None, help="write one JSON line per step and per epoch here")
    ap.add_argument("--torch-init", type=int, default=None, metavar="SEED",
                    help="start from PyTorch's own he_uniform draw (torch.manual_seed(SEED))")
    ap.add_argument("--torch-orders", type=int, default=None, metavar="SEED",
                    help="shuffle every epoch with torch.randperm seeded SEED instead of our orders")
    ap.add_argument("--write-orders", default=None, metavar="FILE",
                    help="write the --torch-orders draws (int32 [epochs, n]) and exit")
    ap.add_argument("--write-init", default=None, metavar="FILE",
                    help="write the --torch-init draw (f32, parameters() order) and exit")
    ap.add_argument("--adam", choices=["torch", "keras"], default="torch")
    ap.add_argument("--no-eval", action="store_true", help="no evaluation between epochs")
    ap.add_argument("--quiet", action="store_true", help="print the epoch summary only")
    ap.add_argument("--save-as", default=None, metavar="DIR",
                    help="also write this run as a trajectory folder, to compare another replay with")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    d = args.dir
    meta = json.load(open(os.path.join(d, "params.json")))
    n, epochs, batch = meta["n_train"], meta["epochs"], meta["batch"]
    if args.write_orders or args.write_init:
        if args.write_orders:
            torch_orders(args.torch_orders or 0, epochs, n).tofile(args.write_orders)
        if args.write_init:
            flat_params(peer_init(meta["model"], args.torch_init or 0)).tofile(args.write_init)
        return
    orders = np.fromfile(os.path.join(d, "orders.bin"), dtype=np.int32).reshape(epochs, n)
    if args.torch_orders is not None:
        orders = torch_orders(args.torch_orders, epochs, n)
    images = torch.from_numpy(np.fromfile(os.path.join(d, "images.bin"), dtype=np.uint8).reshape(-1, 3, 32, 32))
    labels = torch.from_numpy(np.fromfile(os.path.join(d, "labels.bin"), dtype=np.uint8).astype(np.int64))
    tx = torch.from_numpy(np.fromfile(os.path.join(d, "test_images.bin"), dtype=np.uint8).reshape(-1, 3, 32, 32))
    ty = torch.from_numpy(np.fromfile(os.path.join(d, "test_labels.bin"), dtype=np.uint8).astype(np.int64))
    recs = [json.loads(line) for line in open(os.path.join(d, "ours.jsonl"))]
    ours_steps = [r for r in recs if r["type"] == "step"]
    ours_epochs = [r for r in recs if r["type"] == "epoch"]
    steps_per_epoch = len(ours_steps) // epochs
    dtype = torch.float64 if args.double else torch.float32

    model = build_model(meta["model"]).to(dtype)
    load_params(model, meta, np.fromfile(os.path.join(d, "params.bin"), dtype=np.float32), dtype)
    if args.torch_init is not None:
        load_params(model, meta, flat_params(peer_init(meta["model"], args.torch_init)), dtype)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model) if args.adam == "torch" else KerasAdam(model.parameters(), eps=1e-7)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    out = open(args.json, "w") if args.json else None
    saved = []  # --save-as: this run's records in trajectory's format
    if args.save_as:
        start_save(args.save_as, d, meta, orders, model)
    evaluate_between = meta["eval"] and not args.no_eval
    summary = []
    model.train()
    for e in range(epochs):
        if not args.quiet:
            print(f"epoch {e + 1}\n{'step':>5} {'ours loss':>10} {'pytorch':>10} {'rel diff':>9}   "
                  f"{'ours acc':>8} {'pytorch':>7}")
        loss_sum, correct, seen, rels = 0.0, 0, 0, []
        for s in range(steps_per_epoch):
            idx = torch.from_numpy(orders[e, s * batch:(s + 1) * batch].astype(np.int64))
            x = images[idx].to(dtype) / 127.5 - 1.0
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            opt.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            right = (logits.argmax(1) == y).sum().item()
            loss_sum += loss.item() * len(y)
            correct += right
            seen += len(y)
            rec = ours_steps[e * steps_per_epoch + s]
            rel = abs(rec["loss"] - loss.item()) / abs(loss.item())
            rels.append(rel)
            if not args.quiet and (s < 5 or s >= steps_per_epoch - 3 or (s + 1) % 10 == 0):
                print(f"{rec['step']:>5} {rec['loss']:>10.6f} {loss.item():>10.6f} {rel:>9.2e}   "
                      f"{rec['acc']:>8.4f} {right / len(y):>7.4f}")
            saved.append({"type": "step", "epoch": e + 1, "step": rec["step"], "loss": loss.item(),
                          "acc": right / len(y)})
            if out:
                out.write(json.dumps({"type": "step", "epoch": e + 1, "step": rec["step"],
                                      "ours_loss": rec["loss"], "pytorch_loss": loss.item(),
                                      "rel_diff": rel, "ours_acc": rec["acc"],
                                      "pytorch_acc": right / len(y)}) + "\n")
        ev = evaluate(model, tx, ty, meta["eval_batch"], dtype, args.channels_last) if evaluate_between else (None, None)
        o = ours_epochs[e]
        gaps = {}
        path = os.path.join(d, f"params_epoch{e + 1}.bin")
        if os.path.exists(path):
            gaps = param_gap(model, meta, np.fromfile(path, dtype=np.float32))
        bn_gap = {}
        for name, t in (("running_mean", bn.running_mean), ("running_var", bn.running_var)):
            a, b = np.asarray(o["bn." + name]), t.detach().double().numpy()
            bn_gap[name] = float(np.abs(a - b).max() / np.abs(b).max())
        row = {"type": "epoch", "epoch": e + 1, "ours_train_loss": o["train_loss"],
               "pytorch_train_loss": loss_sum / seen, "ours_train_acc": o["train_acc"],
               "pytorch_train_acc": correct / seen, "ours_test_loss": o.get("test_loss"),
               "pytorch_test_loss": ev[0], "ours_test_acc": o.get("test_acc"), "pytorch_test_acc": ev[1],
               "rel_diff_median": float(np.median(rels)), "rel_diff_max": float(np.max(rels)),
               "first_step_rel_diff_over_1e-2": next((e * steps_per_epoch + i + 1 for i, r in enumerate(rels) if r > 1e-2), None),
               "param_rel_l2": gaps, "bn_rel_max": bn_gap}
        summary.append(row)
        saved.append({"type": "epoch", "epoch": e + 1, "steps": steps_per_epoch, "train_loss": loss_sum / seen,
                      "train_acc": correct / seen, "test_loss": ev[0], "test_acc": ev[1],
                      "bn.running_mean": bn.running_mean.tolist(), "bn.running_var": bn.running_var.tolist()})
        if args.save_as:
            flat_params(model).tofile(os.path.join(args.save_as, f"params_epoch{e + 1}.bin"))
        if out:
            out.write(json.dumps(row) + "\n")
    if out:
        out.close()
    if args.save_as:
        with open(os.path.join(args.save_as, "ours.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in saved)
    print(f"{'epoch':>5} {'running loss ours':>17} {'pytorch':>8} {'diff':>8}  {'step rel diff median':>20} "
          f"{'max':>8}  {'test acc ours':>13} {'pytorch':>8}  {'params rel L2 max':>17}  {'bn mean/var':>12}")
    for r in summary:
        gap = max(r["param_rel_l2"].values()) if r["param_rel_l2"] else float("nan")
        acc = (f"{r['ours_test_acc']:>13.4f} {r['pytorch_test_acc']:>8.4f}" if r["pytorch_test_acc"] is not None
               else f"{'-':>13} {'-':>8}")
        print(f"{r['epoch']:>5} {r['ours_train_loss']:>17.4f} {r['pytorch_train_loss']:>8.4f} "
              f"{r['ours_train_loss'] - r['pytorch_train_loss']:>+8.4f}  {r['rel_diff_median']:>20.2e} "
              f"{r['rel_diff_max']:>8.2e}  {acc}  {gap:>17.2e}  "
              f"{r['bn_rel_max']['running_mean']:.1e}/{r['bn_rel_max']['running_var']:.1e}")


if __name__ == "__main__":
    main()
