#!/usr/bin/python3
"""Convergence parity with PyTorch over several seeds: for each model and seed, `train` and
`torch_peer.py train` run the seed's recipe (Adam lr 1e-3 eps 1e-7, batch 128, x/127.5 - 1, no
augmentation, Keras' he_uniform initialisation, BatchNorm momentum 0.99 / eps 1e-3) on the same
class-balanced subset of CIFAR-10 on the CPU in fp32; then, per epoch, the running training loss,
the running training accuracy and the test accuracy (eval mode) of each framework as mean ± sd
over the seeds, their difference in units of PyTorch's seed-to-seed sd, Welch's t, and a verdict.

    bench/parity.py [--models depsep,normal] [--seeds 0,1,2,3] [--epochs 2] [--limit-train 9984]
        [--limit-test 10000] [--threads 2] [--data ../shared/cifar10] [--out bench/results/parity]
        [--report-only]

Every run writes its JSON-lines log to OUT/<model>_seed<N>_{ours,pytorch}.jsonl (a log that is
already complete is reused, so an interrupted benchmark resumes, and more seeds can be added
later); the table goes to stdout and to OUT/summary_<models>.md, the numbers to
OUT/summary_<models>.json. Verdict, per model, on the last epoch's running
loss: "within spread" when |mean ours - mean PyTorch| <= PyTorch's sample sd over the seeds.
"""
import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
METRICS = [("train_loss", "running train loss", 4, 1.0), ("train_acc", "running train acc", 2, 100.0),
           ("test_acc", "test acc (eval)", 2, 100.0)]


def read_log(path):
    """The epoch records and the summary of a complete log, or None."""
    if not os.path.exists(path):
        return None
    recs = [json.loads(line) for line in open(path) if line.strip()]
    summary = [r for r in recs if r.get("type") == "summary"]
    if not summary:
        return None
    return {"header": next(r for r in recs if r.get("type") == "header"),
            "epochs": [r for r in recs if r.get("type") == "epoch"], "summary": summary[0]}


def run(cmd, log):
    print("+ " + shlex.join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  {time.time() - t0:.0f} s -> {os.path.relpath(log, ROOT)}", flush=True)


def mean_sd(values):
    m = statistics.mean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else float("nan"))


def welch_t(a, b):
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    se = math.sqrt(sa * sa / len(a) + sb * sb / len(b))
    return (ma - mb) / se if se > 0 else float("nan")


def fmt(v, digits, scale):
    return f"{v * scale:.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="depsep,normal")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit-train", type=int, default=9984)
    ap.add_argument("--limit-test", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.environ.get("CIFAR10_DIR", os.path.join(ROOT, "..", "shared", "cifar10")))
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "parity"))
    ap.add_argument("--report-only", action="store_true", help="only summarise the logs in --out")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        ap.error("--seeds: at least two seeds are needed for a spread")
    os.makedirs(args.out, exist_ok=True)
    train = os.path.join(args.build, "bin", "train")
    common = ["--batch", "128", "--epochs", str(args.epochs), "--threads", str(args.threads),
              "--limit-train", str(args.limit_train), "--limit-test", str(args.limit_test),
              "--data", args.data]

    logs = {}
    for model in models:
        for seed in seeds:
            for fw in ("ours", "pytorch"):
                path = os.path.join(args.out, f"{model}_seed{seed}_{fw}.jsonl")
                logs[model, seed, fw] = path
                if args.report_only or read_log(path):
                    continue
                if os.path.exists(path):
                    os.remove(path)  # an interrupted run: start it again
                if fw == "ours":
                    cmd = [train, "--model", model, "--seed", str(seed), "--device", "cpu",
                           "--precision", "fp32", "--no-progress", "--log", path] + common
                else:
                    cmd = [sys.executable, os.path.join(HERE, "torch_peer.py"), "train", "--model", model,
                           "--seed", str(seed), "--device", "cpu", "--channels-last", "--subset",
                           "balanced", "--log", path] + common
                run(cmd, path)

    rows, verdicts, out_json = [], [], {"command": shlex.join([sys.executable] + sys.argv), "models": {}}
    header = None
    for model in models:
        runs = {fw: [read_log(logs[model, s, fw]) for s in seeds] for fw in ("ours", "pytorch")}
        missing = [f"{fw} seed {s}" for fw in runs for s, r in zip(seeds, runs[fw]) if r is None]
        if missing:
            print(f"{model}: no complete log for {', '.join(missing)}; skipped", file=sys.stderr)
            continue
        header = header or runs["pytorch"][0]["header"]
        epochs = min(len(r["epochs"]) for fw in runs for r in runs[fw])
        out_json["models"][model] = {}
        for e in range(epochs):
            for key, label, digits, scale in METRICS:
                vals = {fw: [r["epochs"][e][key] for r in runs[fw]] for fw in runs}
                (mo, so), (mp, sp) = mean_sd(vals["ours"]), mean_sd(vals["pytorch"])
                d = mo - mp
                rows.append(f"| {model} | {e + 1} | {label} | {fmt(mo, digits, scale)} ± {fmt(so, digits, scale)} | "
                            f"{fmt(mp, digits, scale)} ± {fmt(sp, digits, scale)} | {d * scale:+.{digits}f} | "
                            f"{d / sp if sp > 0 else float('nan'):+.2f} | {welch_t(vals['ours'], vals['pytorch']):+.2f} | "
                            f"{mo / mp:.3f} | {' '.join(fmt(v, digits, scale) for v in vals['ours'])} | "
                            f"{' '.join(fmt(v, digits, scale) for v in vals['pytorch'])} |")
                out_json["models"][model].setdefault(f"epoch{e + 1}", {})[key] = {
                    "ours": vals["ours"], "pytorch": vals["pytorch"], "ours_mean": mo, "ours_sd": so,
                    "pytorch_mean": mp, "pytorch_sd": sp, "diff": d, "diff_over_pytorch_sd": d / sp if sp > 0 else None,
                    "welch_t": welch_t(vals["ours"], vals["pytorch"]), "ratio": mo / mp}
        last = out_json["models"][model][f"epoch{epochs}"]["train_loss"]
        within = abs(last["diff"]) <= last["pytorch_sd"]
        verdicts.append(f"verdict: {model}, epoch {epochs} running train loss ours {last['ours_mean']:.4f} ± "
                        f"{last['ours_sd']:.4f} vs PyTorch {last['pytorch_mean']:.4f} ± {last['pytorch_sd']:.4f} "
                        f"({len(seeds)} seeds): difference {last['diff']:+.4f} = "
                        f"{last['diff'] / last['pytorch_sd']:+.2f} PyTorch sd, Welch t {last['welch_t']:+.2f}: "
                        f"{'WITHIN' if within else 'OUTSIDE'} PyTorch's seed-to-seed spread")
        out_json["models"][model]["verdict"] = verdicts[-1]
        out_json["models"][model]["within_spread"] = within

    table = ["| model | epoch | metric | ours (mean ± sd) | PyTorch (mean ± sd) | ours - PyTorch | in PyTorch sd | Welch t | ours / PyTorch | ours per seed | PyTorch per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"] + rows
    # Threads and builds as the logs record them (logs of earlier runs may differ from --threads).
    used = {fw: {} for fw in ("ours", "pytorch")}
    commits = {}
    for (model, seed, fw), path in logs.items():
        r = read_log(path)
        if r is None:
            continue
        used[fw].setdefault(r["header"].get("threads", "?"), []).append(seed)
        if fw == "ours":
            commits.setdefault(str(r["header"].get("git_commit", "?")), []).append(seed)
    def by_value(d):
        return "; ".join(f"{v} (seeds {','.join(map(str, sorted(set(s))))})" for v, s in d.items())
    setup = (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), {args.epochs} epochs, class-balanced subset of "
             f"{args.limit_train} train / {args.limit_test} test images, batch 128, fp32 CPU; threads: "
             f"ours {by_value(used['ours'])}, PyTorch {by_value(used['pytorch'])}; our builds: "
             f"{by_value(commits)}; PyTorch {header['torch_version'] if header else '?'} channels_last")
    text = "\n".join([setup, "", *table, "", *verdicts])
    print("\n" + text)
    out_json["setup"] = setup
    out_json["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    stem = os.path.join(args.out, "summary_" + "_".join(models))
    with open(stem + ".json", "w") as f:
        json.dump(out_json, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
