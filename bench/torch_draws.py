#!/usr/bin/python3
"""Compares the random draws `train --seed S` starts from (written by build/bin/draws) with
PyTorch's (torch_peer.py train --seed S: torch.manual_seed, he_uniform with Keras' fans, and a
torch.randperm per epoch), in distribution, over many seeds.

    build/bin/draws --model depsep --seeds 300 --n 9984 --epochs 2 --out /tmp/draws
    /usr/bin/python3 bench/torch_draws.py /tmp/draws [--labels LABELS.bin] [--json OUT.json]

Initial weights, per tensor: the values over limit pooled over seeds against U(-1, 1)
(Kolmogorov-Smirnov distance), each seed's RMS and mean (mean and sd over seeds; two-sample KS
p-value ours vs PyTorch), the correlation of neighbouring values and of the same tensor in
consecutive seeds; and the first block's composed 3x3x3 -> 128 kernel (pointwise x depthwise), its
Frobenius norm per seed. Orders: how much the class counts of a batch of 128 vary (needs the
labels of the images in data set order, e.g. trajectory's labels.bin), the rank correlation of
the positions of the images in epoch 1 and 2, and how many of an image's batchmates in epoch 1
are its batchmates again in epoch 2 (independent shuffles: 127^2 / (n - 1)).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import build_model, init_weights  # noqa: E402


def torch_draws(model_kind, seeds, n, epochs):
    params, orders = [], []
    for s in range(seeds):
        torch.manual_seed(s)  # as torch_peer.py: setup() seeds, then make_model builds and inits
        m = build_model(model_kind)
        init_weights(m, "he_uniform")
        params.append([p.detach().numpy().copy() for p in m.parameters()])
        gen = torch.Generator()
        gen.manual_seed(s)
        orders.append(np.stack([torch.randperm(n, generator=gen).numpy() for _ in range(epochs)]))
    return params, np.asarray(orders)


def order_stats(orders, labels, batch=128):
    """orders [seeds, epochs, n] -> dict of statistics (mean over seeds)."""
    seeds, epochs, n = orders.shape
    nb = n // batch
    out = {"class_count_sd": [], "rank_corr_e1_e2": [], "shared_batchmates": [], "next_seed_rank_corr": []}
    for s in range(seeds):
        if labels is not None:
            counts = np.stack([np.bincount(labels[orders[s, 0, b * batch:(b + 1) * batch]], minlength=10)
                               for b in range(nb)])
            out["class_count_sd"].append(counts.std(axis=0).mean())
        pos = np.empty((epochs, n), dtype=np.int64)
        for e in range(epochs):
            pos[e, orders[s, e]] = np.arange(n)
        if epochs > 1:
            out["rank_corr_e1_e2"].append(np.corrcoef(pos[0], pos[1])[0, 1])
            b0, b1 = pos[0] // batch, pos[1] // batch
            pair = np.bincount(b0 * (nb + 1) + b1, minlength=(nb + 1) ** 2)
            out["shared_batchmates"].append(((pair * (pair - 1)).sum()) / n)
        if s + 1 < seeds:
            nxt = np.empty(n, dtype=np.int64)
            nxt[orders[s + 1, 0]] = np.arange(n)
            out["next_seed_rank_corr"].append(np.corrcoef(pos[0], nxt)[0, 1])
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in out.items() if v}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--labels", default=None, help="uint8 labels of the n images, data set order")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    seeds, n, epochs = meta["seeds"], meta["n"], meta["epochs"]
    shapes = [m["shape"] for m in meta["params"]]
    sizes = [int(np.prod(s)) for s in shapes]
    flat = np.fromfile(os.path.join(args.dir, "params.bin"), dtype=np.float32).reshape(seeds, -1)
    offsets = np.cumsum([0] + sizes)
    ours = [[flat[s, offsets[i]:offsets[i + 1]].reshape(shapes[i]) for i in range(len(sizes))] for s in range(seeds)]
    ours_orders = np.fromfile(os.path.join(args.dir, "orders.bin"), dtype=np.int32).reshape(seeds, epochs, n)
    theirs, theirs_orders = torch_draws(meta["model"], seeds, n, epochs)
    report = {"seeds": seeds, "tensors": {}, "orders": {}}

    print(f"{seeds} seeds of each. Initial weights (values / limit; 'rms' is a seed's RMS / limit, "
          f"U(-1, 1) has 0.5774):")
    print(f"{'tensor':26} {'KS to U(-1,1) ours':>18} {'pytorch':>8} | {'rms ours':>15} {'pytorch':>15} {'KS p':>6} | "
          f"{'mean ours (sd)':>15} {'pytorch (sd)':>15} {'KS p':>6} | {'lag-1 corr ours':>15} {'pytorch':>8} | "
          f"{'next seed corr':>14}")
    for i, m in enumerate(meta["params"]):
        a = np.stack([ours[s][i].ravel() for s in range(seeds)]).astype(np.float64)
        b = np.stack([theirs[s][i].ravel() for s in range(seeds)]).astype(np.float64)
        limit = max(np.abs(a).max(), np.abs(b).max())
        if limit == 0 or m["name"].startswith("bn."):
            continue  # zero biases, BatchNorm's gamma/beta: constants in both
        a, b = a / limit, b / limit
        ks = [stats.kstest(x.ravel(), stats.uniform(loc=-1, scale=2).cdf).statistic for x in (a, b)]
        rms = [np.sqrt((x ** 2).mean(axis=1)) for x in (a, b)]
        mean = [x.mean(axis=1) for x in (a, b)]
        lag = [np.mean([np.corrcoef(x[s, :-1], x[s, 1:])[0, 1] for s in range(seeds)]) for x in (a, b)]
        nxt = np.mean([np.corrcoef(a[s], a[s + 1])[0, 1] for s in range(seeds - 1)])
        row = {"limit": limit, "ks_uniform": ks, "rms_mean": [float(r.mean()) for r in rms],
               "rms_sd": [float(r.std()) for r in rms], "rms_ks_p": stats.ks_2samp(*rms).pvalue,
               "mean_mean": [float(x.mean()) for x in mean], "mean_sd": [float(x.std()) for x in mean],
               "mean_ks_p": stats.ks_2samp(*mean).pvalue, "lag1_corr": lag, "next_seed_corr_ours": nxt}
        report["tensors"][m["name"]] = row
        print(f"{m['name']:26} {ks[0]:>18.4f} {ks[1]:>8.4f} | {rms[0].mean():>7.4f} ({rms[0].std():.4f}) "
              f"{rms[1].mean():>6.4f} ({rms[1].std():.4f}) {row['rms_ks_p']:>6.2f} | {mean[0].mean():>+7.4f} "
              f"({mean[0].std():.4f}) {mean[1].mean():>+6.4f} ({mean[1].std():.4f}) {row['mean_ks_p']:>6.2f} | "
              f"{lag[0]:>+15.4f} {lag[1]:>+8.4f} | {nxt:>+14.4f}")

    # The first block as one 3x3 convolution 3 -> 128: W[k, c] = pointwise[k, c] * depthwise[c].
    names = [m["name"] for m in meta["params"]]
    if "conv1.depthwise.weight" in names:
        i, j = names.index("conv1.depthwise.weight"), names.index("conv1.pointwise.weight")
        norm = [[np.linalg.norm(d[j].reshape(128, 3, 1, 1) * d[i].reshape(1, 3, 3, 3)) for d in draws]
                for draws in (ours, theirs)]
        p = stats.ks_2samp(*norm).pvalue
        report["first_block_norm"] = {"ours": [float(np.mean(norm[0])), float(np.std(norm[0]))],
                                      "pytorch": [float(np.mean(norm[1])), float(np.std(norm[1]))], "ks_p": p}
        print(f"first block composed kernel, Frobenius norm per seed: ours {np.mean(norm[0]):.3f} ± "
              f"{np.std(norm[0]):.3f}, pytorch {np.mean(norm[1]):.3f} ± {np.std(norm[1]):.3f} (KS p {p:.2f})")

    labels = np.fromfile(args.labels, dtype=np.uint8) if args.labels else None
    so, st = order_stats(ours_orders, labels), order_stats(theirs_orders, labels)
    report["orders"] = {"ours": so, "pytorch": st, "independent_shared_batchmates": 127 ** 2 / (n - 1)}
    print(f"\nOrders of {n} images, batch 128 (mean ± sd over seeds):")
    for k in so:
        print(f"  {k:22} ours {so[k][0]:+.4f} ± {so[k][1]:.4f}   pytorch {st[k][0]:+.4f} ± {st[k][1]:.4f}")
    print(f"  (independent shuffles share {127 ** 2 / (n - 1):.4f} batchmates per image)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
