#!/usr/bin/env bash
# One epoch of the seed's recipe on all 50,000 CIFAR-10 training images on the CPU, ours and
# PyTorch (Debian's python3-torch) on the same data in the same run: images/sec, data-wait time,
# train accuracy (evaluated on the whole training set afterwards) and test accuracy.
#   bench/cpu_epoch.sh [--model depsep] [--epochs 1] [--threads 2] [--data ../shared/cifar10]
# Logs go to bench/results/cpu_epoch_<model>_{ours,pytorch}.jsonl; the comparison is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
model=depsep epochs=1 threads=2 data=${CIFAR10_DIR:-../shared/cifar10} build=${BUILD_DIR:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) echo "unknown option $1 (expected --model, --epochs, --threads, --data)" >&2; exit 2 ;;
  esac
done
[ -x "$build/bin/train" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
ours=bench/results/cpu_epoch_${model}_ours.jsonl
peer=bench/results/cpu_epoch_${model}_pytorch.jsonl
rm -f "$ours" "$peer"
"$build/bin/train" --model "$model" --batch 128 --epochs "$epochs" --threads "$threads" \
  --data "$data" --no-progress --log "$ours"
/usr/bin/python3 bench/torch_peer.py train --model "$model" --batch 128 --epochs "$epochs" \
  --device cpu --threads "$threads" --data "$data" --log "$peer"
echo
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $threads threads"
"$build/bin/compare" "$ours" "$peer"
