#!/usr/bin/python3
"""Figures for the benchmark results: the seed article's channel sweep (conv/sec and achieved
TFLOP/s vs channels, one line per kind), training curves (train loss, test accuracy and
images/sec per epoch, one line per run) and training-step profiles (per layer, the measured
time next to its roofline bound, one panel per model). `selftest` plots synthetic inputs and
checks the files.

Run with /usr/bin/python3 (Debian's python3-matplotlib):
  plot.py sweep results/sweep_h100.csv -o sweep.svg
  plot.py train runs/dsc_normal.jsonl runs/torch_normal.jsonl -o train.png
  plot.py profile runs/normal.jsonl runs/depsep.jsonl -o profile.svg   # train --profile --log
  plot.py selftest
"""

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import xml.etree.ElementTree as ET

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORMATS = (".svg", ".png")


class PlotError(Exception):
    pass


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_output(path: str):
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise PlotError(f"-o {path}: the output format comes from the extension; expected one of "
                        f"{', '.join(FORMATS)}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)


def read_rows(path: str):
    """Rows of a .csv (header line) or .jsonl (one object per line) file, as dicts, each with
    `_where` = "FILE line N" for error messages."""
    if not os.path.isfile(path):
        raise PlotError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    rows = []
    with open(path, newline="") as f:
        if ext == ".csv":
            for i, row in enumerate(csv.DictReader(f), start=2):
                row["_where"] = f"{path} line {i}"
                rows.append(row)
        elif ext in (".jsonl", ".json", ".ndjson"):
            for i, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PlotError(f"{path} line {i}: not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise PlotError(f"{path} line {i}: expected a JSON object")
                obj["_where"] = f"{path} line {i}"
                rows.append(obj)
        else:
            raise PlotError(f"{path}: expected a .csv or .jsonl file")
    return rows


def number(row: dict, key: str) -> float:
    if key not in row or row[key] in (None, ""):
        raise PlotError(f"{row['_where']}: missing key '{key}'")
    try:
        return float(row[key])
    except (TypeError, ValueError):
        raise PlotError(f"{row['_where']}: '{key}' = {row[key]!r} is not a number") from None


# ---- sweep -------------------------------------------------------------------------------------

def sweep_points(rows, article_units: bool):
    """{(kind, device, batch): {channels: (conv_per_sec, tflops)}} (medians over repeated rows)
    and the list of skipped out-of-memory rows."""
    groups, skipped = {}, []
    for row in rows:
        if str(row.get("status", "")).lower() == "oom":
            skipped.append(row)
            continue
        if not row.get("kind"):
            raise PlotError(f"{row['_where']}: missing key 'kind'")
        channels = number(row, "channels")
        conv = number(row, "conv_per_sec")
        if row.get("tflops") not in (None, ""):
            tflops = number(row, "tflops")  # 10^12 FLOP/s, 2 per multiply-add
        elif row.get("macs_per_sec") not in (None, ""):
            tflops = 2 * number(row, "macs_per_sec") / 1e12
        else:
            raise PlotError(f"{row['_where']}: missing key 'tflops' (or 'macs_per_sec')")
        if article_units:
            tflops /= 2  # the article's "TFLOPS" are 10^12 multiply-adds per second
        key = (str(row["kind"]), str(row.get("device") or ""), str(row.get("batch") or ""))
        groups.setdefault(key, {}).setdefault(channels, []).append((conv, tflops))
    points = {k: {c: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
                  for c, vals in sorted(per.items())}
              for k, per in groups.items()}
    return points, skipped


def plot_sweep(inputs, out: str, article_units: bool = False, title: str = None):
    check_output(out)
    rows = [r for path in inputs for r in read_rows(path)]
    if not rows:
        raise PlotError(f"{', '.join(inputs)}: no rows")
    points, skipped = sweep_points(rows, article_units)
    if not points:
        raise PlotError(f"{', '.join(inputs)}: every row is out-of-memory; nothing to plot")
    for r in skipped:
        print(f"plot.py sweep: skipped out-of-memory row ({r['_where']}: kind {r.get('kind')}, "
              f"channels {r.get('channels')})", file=sys.stderr)

    plt = _pyplot()
    fig, (ax_rate, ax_tf) = plt.subplots(1, 2, figsize=(11, 4.2))
    several_devices = len({(d, b) for _, d, b in points}) > 1
    styles = {"normal": "o-", "depsep": "s--"}
    order = lambda item: ({"normal": 0, "depsep": 1}.get(item[0][0], 2), item[0])  # noqa: E731
    for (kind, device, batch), per in sorted(points.items(), key=order):
        label = kind
        if several_devices:
            label += " (" + ", ".join(x for x in (device, f"batch {batch}" if batch else "") if x) + ")"
        xs = list(per)
        ax_rate.plot(xs, [per[c][0] for c in xs], styles.get(kind, "^-"), label=label)
        ax_tf.plot(xs, [per[c][1] for c in xs], styles.get(kind, "^-"), label=label)
    for ax in (ax_rate, ax_tf):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("channels (C = K)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax_rate.set_yscale("log")
    ax_rate.set_ylabel("conv/sec (images/s)")
    ax_tf.set_ylabel("achieved 10^12 multiply-adds/s (article's \"TFLOPS\")" if article_units
                     else "achieved TFLOP/s (2 FLOPs per multiply-add)")
    devices = sorted({d for _, d, _ in points if d})
    batches = sorted({b for _, _, b in points if b})
    subtitle = ", ".join(x for x in (" / ".join(devices),
                                     "batch " + "/".join(batches) if batches else "") if x)
    fig.suptitle(title or ("Single-layer sweep" + (f": {subtitle}" if subtitle else "")))
    if skipped:
        fig.text(0.01, 0.01, f"{len(skipped)} out-of-memory point(s) skipped: " +
                 ", ".join(f"{r.get('kind')} C={r.get('channels')}" for r in skipped[:6]) +
                 (" ..." if len(skipped) > 6 else ""), fontsize=8, color="gray")
    fig.tight_layout(rect=(0, 0.04 if skipped else 0, 1, 1))
    fig.savefig(out)
    plt.close(fig)
    print(f"plot.py sweep: wrote {out} ({sum(len(p) for p in points.values())} points, "
          f"{len(skipped)} skipped)", file=sys.stderr)


# ---- train -------------------------------------------------------------------------------------

def read_run(path: str):
    rows = read_rows(path)
    headers = [r for r in rows if r.get("type") == "header"]
    if not headers:
        raise PlotError(f"{path}: no header line (an object with \"type\": \"header\")")
    header = headers[0]
    for key in ("model", "device", "precision"):
        if key not in header:
            raise PlotError(f"{header['_where']}: header is missing key '{key}'")
    epochs = sorted((r for r in rows if r.get("type") == "epoch"),
                    key=lambda r: number(r, "epoch"))
    if not epochs:
        raise PlotError(f"{path}: no epoch lines (objects with \"type\": \"epoch\")")
    for r in epochs:
        for key in ("epoch", "train_loss", "test_acc"):
            number(r, key)
        if "images_per_sec" not in r:
            raise PlotError(f"{r['_where']}: missing key 'images_per_sec'")
    summary = next((r for r in rows if r.get("type") == "summary"), None)
    return header, epochs, summary


def run_label(header: dict) -> str:
    parts = [str(header["model"]), str(header.get("gpu") or header["device"]),
             str(header["precision"])]
    if header.get("framework"):
        parts.insert(0, str(header["framework"]))
    return " ".join(parts)


def as_percent(values):
    """Accuracies are fractions in [0, 1]; logs that hold percentages are shown as they are."""
    vals = [v for v in values if v is not None]
    scale = 100.0 if vals and max(vals) <= 1.0 else 1.0
    return [None if v is None else v * scale for v in values]


def plot_train(inputs, out: str, title: str = None):
    check_output(out)
    runs = [(path, *read_run(path)) for path in inputs]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for path, header, epochs, summary in runs:
        xs = [int(number(r, "epoch")) for r in epochs]
        label = run_label(header)
        axes[0].plot(xs, [number(r, "train_loss") for r in epochs], "o-", label=label)
        acc = as_percent([number(r, "test_acc") for r in epochs])
        line, = axes[1].plot(xs, acc, "o-", label=label)
        if summary is not None and summary.get("train_acc") is not None:
            train_acc = as_percent([float(summary["train_acc"])])[0]
            axes[1].plot([xs[-1]], [train_acc], "*", color=line.get_color(), markersize=10)
        ips = [r.get("images_per_sec") for r in epochs]
        axes[2].plot([x for x, v in zip(xs, ips) if v is not None],
                     [float(v) for v in ips if v is not None], "o-", label=label)
    axes[0].set_ylabel("train loss (running mean over the epoch)")
    axes[1].set_ylabel("test accuracy (%)  [* = final train-set accuracy]")
    axes[2].set_ylabel("training images/sec")
    axes[2].set_ylim(bottom=0)  # epoch-to-epoch jitter of a few img/s should not look like a cliff
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.suptitle(title or "Training runs")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    print(f"plot.py train: wrote {out} ({len(runs)} run(s))", file=sys.stderr)


# ---- profile -----------------------------------------------------------------------------------

LIMIT_LETTER = {"compute": "C", "memory": "M", "overhead": "O"}


def read_profiles(path: str):
    """The "profile" records of a log (train --profile --log, train_steps --profile), grouped by
    model: {model: (rows in order, total record)}."""
    rows = [r for r in read_rows(path) if r.get("type") == "profile"]
    if not rows:
        raise PlotError(f"{path}: no profile lines (objects with \"type\": \"profile\"; run "
                        f"train --profile --log FILE)")
    out = {}
    for r in rows:
        if "row" not in r or "model" not in r:
            raise PlotError(f"{r['_where']}: profile line without 'row' or 'model'")
        rows_of, total = out.setdefault(str(r["model"]), ([], None))
        if r["row"] == "total":
            number(r, "step_ms")
            out[str(r["model"])] = (rows_of, r)
        else:
            number(r, "ms")
            rows_of.append(r)
    for model, (rows_of, total) in out.items():
        if total is None:
            raise PlotError(f"{path}: the {model} profile has no total line (\"row\": \"total\")")
    return out


def profile_groups(rows):
    """Per layer (in the order of the log): measured forward/backward/step time and the bounds."""
    groups = {}
    for r in rows:
        g = groups.setdefault(str(r.get("layer", r["row"])),
                              {"forward": 0.0, "backward": 0.0, "step": 0.0,
                               "bound_forward": 0.0, "bound_backward": 0.0, "bound_step": 0.0,
                               "limits": []})
        passes = r.get("pass", "step")
        passes = passes if passes in ("forward", "backward") else "step"
        g[passes] += float(r["ms"])
        if r.get("bound_ms") is not None:
            g["bound_" + passes] += float(r["bound_ms"])
        if r.get("limit"):
            g["limits"].append(LIMIT_LETTER.get(r["limit"], "?"))
    return groups


def phase_groups(rows):
    """Per layer whose rows carry kernel phases ("phases": [{"name", "ms"}], the fused DepSep
    layers): {layer: [(label, ms)]}, each pass's phases in order, then the pass's "rest" (its time
    outside every phase)."""
    groups = {}
    for r in rows:
        phases = r.get("phases") or []
        if not phases:
            continue
        short = {"forward": "fwd", "backward": "bwd"}.get(r.get("pass"), str(r.get("pass", "")))
        parts = groups.setdefault(str(r.get("layer", r["row"])), [])
        inside = 0.0
        for ph in phases:
            if "name" not in ph or "ms" not in ph:
                raise PlotError(f"{r['_where']}: a phase without 'name' or 'ms'")
            parts.append((f"{short} {ph['name']}", float(ph["ms"])))
            inside += float(ph["ms"])
        parts.append((f"{short} rest", max(0.0, float(r["ms"]) - inside)))
    return groups


def plot_phases(ax, model, groups):
    """Stacked bars of the kernel phases of each layer that has them."""
    import matplotlib
    names = list(groups)
    labels = []
    for parts in groups.values():
        for label, _ in parts:
            if label not in labels:
                labels.append(label)
    cmap = matplotlib.colormaps["tab20"]
    bottom = [0.0] * len(names)
    for i, label in enumerate(labels):
        vals = [sum(ms for l, ms in groups[n] if l == label) for n in names]
        ax.bar(range(len(names)), vals, 0.6, bottom=bottom, color=cmap(i % 20), label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(list(range(len(names))))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_title(f"{model}: kernel phases of the fused layers", fontsize=10)
    ax.set_ylabel("ms per step")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="upper left")


def plot_profile(inputs, out: str, title: str = None):
    check_output(out)
    panels = []
    for path in inputs:
        for model, (rows, total) in read_profiles(path).items():
            panels.append((model, rows, total))
    phased = [(i, model, phase_groups(rows)) for i, (model, rows, _) in enumerate(panels)]
    phased = [(i, model, g) for i, model, g in phased if g]
    plt = _pyplot()
    nrows = 2 if phased else 1
    fig, axes = plt.subplots(nrows, len(panels), figsize=(7.5 * len(panels), 5 * nrows),
                             squeeze=False)
    for ax in axes[0][1:]:
        ax.sharey(axes[0][0])
    if phased:  # the second row: under each model with phases, its phases
        for ax in axes[1]:
            ax.axis("off")
        for i, model, groups in phased:
            axes[1][i].axis("on")
            plot_phases(axes[1][i], model, groups)
    colors = {"forward": "#4c72b0", "backward": "#dd8452", "step": "#8c8c8c"}
    for ax, (model, rows, total) in zip(axes[0], panels):
        groups = profile_groups(rows)
        names = list(groups)
        xs = range(len(names))
        w = 0.38
        bottom = [0.0] * len(names)
        for part in ("forward", "backward", "step"):
            vals = [groups[n][part] for n in names]
            ax.bar([x - w / 2 for x in xs], vals, w, bottom=bottom, color=colors[part],
                   label=f"measured: {part}")
            bottom = [b + v for b, v in zip(bottom, vals)]
        bbottom = [0.0] * len(names)
        for part in ("forward", "backward", "step"):
            vals = [groups[n]["bound_" + part] for n in names]
            ax.bar([x + w / 2 for x in xs], vals, w, bottom=bbottom, color=colors[part],
                   alpha=0.35, hatch="//", edgecolor="black", linewidth=0.3,
                   label=f"roofline bound: {part}")
            bbottom = [b + v for b, v in zip(bbottom, vals)]
        for x, n, top in zip(xs, names, bottom):
            letters = "/".join(groups[n]["limits"])
            if letters:
                ax.annotate(letters, (x - w / 2, max(top, 0)), ha="center", va="bottom",
                            fontsize=7)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{model} ({total.get('precision', '?')}, batch {total.get('batch', '?')}): "
                     f"step {float(total['step_ms']):.1f} ms", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.margins(y=0.08)
    axes[0][0].set_ylabel("ms per step (left bar: measured, right bar: roofline bound)")
    axes[0][0].legend(fontsize=7)
    t0 = panels[0][2]
    fig.suptitle(title or (f"Where the step time goes: {t0.get('device', '?')}, "
                           f"{t0.get('threads', '?')} threads; letters: limit of each row "
                           f"(C compute, M memory, O overhead)"), fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    print(f"plot.py profile: wrote {out} ({len(panels)} model(s), kernel phases of "
          f"{len(phased)})", file=sys.stderr)


# ---- selftest ----------------------------------------------------------------------------------

def check_image(path: str):
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise PlotError(f"selftest: {path} is empty")
    if path.endswith(".png"):
        if not data.startswith(PNG_MAGIC):
            raise PlotError(f"selftest: {path} does not start with the PNG signature")
    else:
        root = ET.fromstring(data)
        if not root.tag.endswith("svg"):
            raise PlotError(f"selftest: {path} root element is {root.tag}, not svg")
        if sum(1 for _ in root.iter()) < 20:
            raise PlotError(f"selftest: {path} has almost no drawing elements")


def expect_error(fn, *args, contains: str):
    try:
        fn(*args)
    except PlotError as e:
        if contains not in str(e):
            raise PlotError(f"selftest: expected an error mentioning {contains!r}, got: {e}")
        return
    raise PlotError(f"selftest: expected an error mentioning {contains!r}, got none")


def selftest(keep: str = None):
    with tempfile.TemporaryDirectory(prefix="dsc_plot_") as tmp:
        d = keep or tmp
        os.makedirs(d, exist_ok=True)
        p = lambda name: os.path.join(d, name)  # noqa: E731
        channels = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
        with open(p("sweep.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["kind", "channels", "conv_per_sec", "tflops", "device", "batch", "status"])
            for c in channels:
                macs = 9 * c * c * 224 * 224
                w.writerow(["normal", c, 1e12 / macs * 30, 60 * min(1, c / 256), "synthetic", 16,
                            "ok"])
                dmacs = (9 * c + c * c) * 224 * 224
                status = "oom" if c == 2048 else "ok"
                w.writerow(["depsep", c, 1e12 / dmacs * 4, 8 * min(1, c / 512), "synthetic", 16,
                            status])
        with open(p("sweep.jsonl"), "w") as f:
            for c in channels[:5]:
                f.write(json.dumps({"kind": "normal", "channels": c, "conv_per_sec": 1000.0 / c,
                                    "macs_per_sec": 1e12 * c / 128}) + "\n")
                f.write(json.dumps({"kind": "depsep", "channels": c, "conv_per_sec": 2000.0 / c,
                                    "macs_per_sec": 1e11 * c / 128}) + "\n")
        for model, device, k in (("normal", "cpu", 1.0), ("depsep", "cuda", 1.3)):
            with open(p(f"run_{model}.jsonl"), "w") as f:
                f.write(json.dumps({"type": "header", "framework": "dsc", "model": model,
                                    "device": device, "precision": "fp32", "batch": 128,
                                    "params": 528778}) + "\n")
                for e in range(1, 6):
                    f.write(json.dumps({"type": "epoch", "epoch": e, "train_loss": 2.0 * k / e,
                                        "train_acc": 0.5 + 0.05 * e / k, "test_loss": 2.2 / e,
                                        "test_acc": 0.45 + 0.04 * e / k,
                                        "images_per_sec": None if e == 1 else (90.0 + e) * k,
                                        "data_wait_s": 0.1, "wall_s": 500.0}) + "\n")
                f.write(json.dumps({"type": "summary", "train_acc": 0.86, "test_acc": 0.66,
                                    "peak_images_per_sec": 95.0}) + "\n")
        for model, k in (("normal", 1.0), ("depsep", 0.3)):
            with open(p(f"profile_{model}.jsonl"), "w") as f:
                for layer in ("conv1", "conv2", "pool", "fc", "loss"):
                    for passes, m in (("forward", 1.0), ("backward", 2.0)):
                        row = {"type": "profile", "model": model, "row": f"{layer} {passes[:3]}",
                               "layer": layer, "pass": passes, "ms": 10 * k * m,
                               "bound_ms": 4 * k * m, "limit": "memory"}
                        if model == "depsep" and layer.startswith("conv"):
                            row["phases"] = [{"name": "depthwise", "ms": 2 * k * m},
                                             {"name": "pointwise", "ms": 7 * k * m}]
                        f.write(json.dumps(row) + "\n")
                f.write(json.dumps({"type": "profile", "model": model, "row": "optimizer",
                                    "layer": "optimizer", "pass": "step", "ms": 1.0,
                                    "bound_ms": 0.01, "limit": "overhead"}) + "\n")
                f.write(json.dumps({"type": "profile", "model": model, "row": "unattributed",
                                    "layer": "unattributed", "pass": "step", "ms": -0.5}) + "\n")
                f.write(json.dumps({"type": "profile", "row": "total", "model": model,
                                    "step_ms": 150 * k, "batch": 128, "precision": "fp32",
                                    "device": "cpu", "threads": 2}) + "\n")
        groups = phase_groups(read_profiles(p("profile_depsep.jsonl"))["depsep"][0])
        got = [(label, round(ms, 6)) for label, ms in groups["conv1"]]
        assert got == [("fwd depthwise", 0.6), ("fwd pointwise", 2.1), ("fwd rest", 0.3),
                       ("bwd depthwise", 1.2), ("bwd pointwise", 4.2), ("bwd rest", 0.6)], got
        assert list(groups) == ["conv1", "conv2"], list(groups)
        assert not phase_groups(read_profiles(p("profile_normal.jsonl"))["normal"][0])
        runs = [p("run_normal.jsonl"), p("run_depsep.jsonl")]
        for ext in FORMATS:
            plot_profile([p("profile_normal.jsonl"), p("profile_depsep.jsonl")],
                         p(f"profile{ext}"))
            check_image(p(f"profile{ext}"))
            plot_sweep([p("sweep.csv")], p(f"sweep{ext}"))
            plot_sweep([p("sweep.jsonl")], p(f"sweep_article{ext}"), True)
            plot_train(runs, p(f"train{ext}"))
            for name in ("sweep", "sweep_article", "train"):
                check_image(p(name + ext))

        # Error paths name the file and the key.
        expect_error(plot_sweep, [p("missing.csv")], p("x.svg"), contains="no such file")
        expect_error(plot_sweep, [p("sweep.csv")], p("x.pdf"), contains="extension")
        with open(p("bad.csv"), "w") as f:
            f.write("kind,channels,tflops\nnormal,8,1.0\n")
        expect_error(plot_sweep, [p("bad.csv")], p("x.svg"), contains="'conv_per_sec'")
        with open(p("nohead.jsonl"), "w") as f:
            f.write(json.dumps({"type": "epoch", "epoch": 1}) + "\n")
        expect_error(plot_train, [p("nohead.jsonl")], p("x.svg"), contains="no header")
        with open(p("noloss.jsonl"), "w") as f:
            f.write(json.dumps({"type": "header", "model": "m", "device": "cpu",
                                "precision": "fp32"}) + "\n")
            f.write(json.dumps({"type": "epoch", "epoch": 1, "test_acc": 0.1,
                                "images_per_sec": 1}) + "\n")
        expect_error(plot_train, [p("noloss.jsonl")], p("x.svg"), contains="'train_loss'")
        expect_error(plot_profile, [p("noloss.jsonl")], p("x.svg"), contains="no profile lines")
        with open(p("nototal.jsonl"), "w") as f:
            f.write(json.dumps({"type": "profile", "model": "m", "row": "fc fwd", "ms": 1}) + "\n")
        expect_error(plot_profile, [p("nototal.jsonl")], p("x.svg"), contains="no total line")
        with open(p("badphase.jsonl"), "w") as f:
            f.write(json.dumps({"type": "profile", "model": "m", "row": "conv1 fwd", "ms": 1,
                                "layer": "conv1", "pass": "forward",
                                "phases": [{"name": "depthwise"}]}) + "\n")
            f.write(json.dumps({"type": "profile", "model": "m", "row": "total", "step_ms": 1})
                    + "\n")
        expect_error(plot_profile, [p("badphase.jsonl")], p("x.svg"), contains="without 'name' or 'ms'")
    print("plot.py selftest: ok (sweep, train and profile plots as SVG and PNG, error messages)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep", help="conv/sec and TFLOP/s vs channels, one line per kind")
    s.add_argument("inputs", nargs="+", metavar="FILE.csv|FILE.jsonl",
                   help="rows with kind, channels, conv_per_sec, tflops (or macs_per_sec); "
                        "optional device, batch, status (oom rows are skipped)")
    s.add_argument("-o", "--output", required=True, help="OUT.svg or OUT.png")
    s.add_argument("--article-units", action="store_true",
                   help="plot 10^12 multiply-adds/s (the article's \"TFLOPS\") instead of TFLOP/s")
    s.add_argument("--title", default=None)
    pr = sub.add_parser("profile", help="per-layer measured step time vs roofline bound, one "
                                        "panel per model")
    pr.add_argument("inputs", nargs="+", metavar="RUN.jsonl",
                    help="logs with \"profile\" lines (train --profile --log FILE)")
    pr.add_argument("-o", "--output", required=True, help="OUT.svg or OUT.png")
    pr.add_argument("--title", default=None)
    t = sub.add_parser("train", help="per-epoch loss, test accuracy, images/sec; one line per run")
    t.add_argument("inputs", nargs="+", metavar="RUN.jsonl", help="training logs (JSON lines)")
    t.add_argument("-o", "--output", required=True, help="OUT.svg or OUT.png")
    t.add_argument("--title", default=None)
    st = sub.add_parser("selftest", help="plot synthetic inputs and check the files")
    st.add_argument("--keep", metavar="DIR", default=None,
                    help="write the synthetic inputs and figures here instead of a temp dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "sweep":
            plot_sweep(args.inputs, args.output, args.article_units, args.title)
        elif args.cmd == "train":
            plot_train(args.inputs, args.output, args.title)
        elif args.cmd == "profile":
            plot_profile(args.inputs, args.output, args.title)
        else:
            selftest(args.keep)
    except PlotError as e:
        ap.exit(2, f"plot.py {args.cmd}: error: {e}\n")


if __name__ == "__main__":
    main()
