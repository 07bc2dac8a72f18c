#!/usr/bin/env bash
# Training-step throughput of the seed's two CNNs on the CPU at batch 128 (random data, Adam),
# ours vs PyTorch (Debian's python3-torch; the faster of its NCHW and channels_last runs) in the
# same run, alternating to share machine noise.
# Warm-up excluded; each program reports the median of its repeats. Prints a markdown table with
# the ratios and appends every measurement as a JSON line to bench/results/cpu_train_steps.jsonl.
#   bench/cpu_train_steps.sh [--threads 2] [--repeats 5] [--iters 3]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 repeats=5 iters=3 build=${BUILD_DIR:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    *) echo "unknown option $1 (expected --threads, --repeats, --iters)" >&2; exit 2 ;;
  esac
done
[ -x "$build/bin/train_steps" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || {
  echo "PyTorch missing: DSC_WITH_PYTHON=1 scripts/install-deps.sh" >&2; exit 1; }
out=bench/results/cpu_train_steps.jsonl
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
declare -A ours torch
for model in normal depsep; do
  o=$("$build/bin/train_steps" --model "$model" --batch 128 --threads "$threads" --warmup 2 \
        --iters "$iters" --repeats "$repeats" 2>/dev/null)
  # PyTorch in both memory formats; the faster one is the peer.
  t1=$(/usr/bin/python3 bench/torch_peer.py steps --model "$model" --batch 128 --device cpu \
        --threads "$threads" --warmup 2 --iters "$iters" --repeats "$repeats" 2>/dev/null | tail -1)
  t2=$(/usr/bin/python3 bench/torch_peer.py steps --model "$model" --batch 128 --device cpu \
        --threads "$threads" --warmup 2 --iters "$iters" --repeats "$repeats" --channels-last \
        2>/dev/null | tail -1)
  ours[$model]=$(echo "$o" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['images_per_sec'])")
  torch[$model]=$(printf '%s\n%s\n' "$t1" "$t2" | /usr/bin/python3 -c "import json,sys; print(max(json.loads(l)['images_per_sec'] for l in sys.stdin if l.strip()))")
  for line in "$o" "$t1" "$t2"; do
    echo "$line" | /usr/bin/python3 -c "
import json,sys; r=json.load(sys.stdin); r.update(date='$date', cpu='''$cpu''', command='bench/cpu_train_steps.sh --threads $threads --repeats $repeats --iters $iters'); print(json.dumps(r))" >> "$out"
  done
done
echo "CPU: $cpu, $threads threads, batch 128, fp32, $date"
echo
echo "| model | ours img/s | PyTorch img/s (best of NCHW, channels_last) | ours / PyTorch |"
echo "|---|---|---|---|"
for model in normal depsep; do
  /usr/bin/python3 -c "print(f'| $model | {${ours[$model]}:.1f} | {${torch[$model]}:.1f} | {${ours[$model]}/${torch[$model]}:.2f}x |')"
done
/usr/bin/python3 -c "print(f'\ndepsep / normal: ours {${ours[depsep]}/${ours[normal]}:.2f}x, PyTorch {${torch[depsep]}/${torch[normal]}:.2f}x')"
