#!/usr/bin/env bash
# One epoch of the seed's recipe on all 50,000 CIFAR-10 training images on the CPU, ours and
# PyTorch (Debian's python3-torch) on the same data in the same run: images/sec, data-wait time,
# train accuracy (evaluated on the whole training set afterwards) and test accuracy.
#   bench/cpu_epoch.sh [--model depsep] [--epochs 1] [--threads 2] [--data ../shared/cifar10]
#                      [--seeds "0 1 2"] [--channels-last]
# One pair of logs per seed: bench/results/cpu_epoch_<model>_seed<N>_{ours,pytorch}.jsonl; the
# `compare` table is printed: every run, then mean ± sd over the seeds of each framework.
# After one epoch the eval-mode accuracies swing by several points with the seed (BatchNorm's
# running statistics still trail the weights), so compare frameworks over several seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
model=depsep epochs=1 threads=2 data=${CIFAR10_DIR:-../shared/cifar10} build=${BUILD_DIR:-build}
seeds=0 peer_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --channels-last) peer_flags+=(--channels-last); shift ;;
    *) echo "unknown option $1 (expected --model, --epochs, --threads, --data, --seeds," \
            "--channels-last)" >&2; exit 2 ;;
  esac
done
[ -x "$build/bin/train" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
for s in $seeds; do
  [[ "$s" =~ ^[0-9]+$ ]] || { echo "--seeds: '$s' is not a non-negative integer" >&2; exit 2; }
done
logs=()
for s in $seeds; do
  ours=bench/results/cpu_epoch_${model}_seed${s}_ours.jsonl
  peer=bench/results/cpu_epoch_${model}_seed${s}_pytorch.jsonl
  rm -f "$ours" "$peer"
  "$build/bin/train" --model "$model" --batch 128 --epochs "$epochs" --threads "$threads" \
    --seed "$s" --data "$data" --no-progress --log "$ours"
  /usr/bin/python3 bench/torch_peer.py train --model "$model" --batch 128 --epochs "$epochs" \
    --device cpu --threads "$threads" --seed "$s" "${peer_flags[@]}" --data "$data" --log "$peer"
  logs+=("$ours" "$peer")
done
echo
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $threads threads"
"$build/bin/compare" "${logs[@]}"
