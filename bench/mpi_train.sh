#!/usr/bin/env bash
# Data-parallel training on this machine: one process of 2 threads against `mpirun -np 2` ranks of
# 1 thread each (train/distributed.h), both models, the same global batch 128 on real CIFAR-10
# images, alternating the two setups to share the machine's noise. images/sec is train's own
# (global: every rank's images; the first 5 steps left out). Prints a markdown table with the
# median of the rounds and writes the logs to bench/results/mpi/.
#   BUILD_DIR=build-cpu bench/mpi_train.sh [--rounds 2] [--images 3840] [--models "normal depsep"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 images=3840 models="normal depsep" build=${BUILD_DIR:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "unknown option $1 (expected --rounds, --images, --models)" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "mpirun missing: scripts/install-deps.sh" >&2; exit 1; }
out=bench/results/mpi
mkdir -p "$out"
common=(--batch 128 --epochs 1 --limit-train "$images" --limit-test 100 --no-progress)
ips() { /usr/bin/python3 -c "import json,sys; print([r for r in map(json.loads, open(sys.argv[1])) \
if r.get('type') == 'epoch'][-1]['images_per_sec'])" "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| model | 1 process x 2 threads img/s | 2 ranks x 1 thread img/s | ranks / process |"
echo "|---|---|---|---|"
for model in $models; do
  one=() two=()
  for r in $(seq "$rounds"); do
    "$build/bin/train" --model "$model" --threads 2 "${common[@]}" \
      --log "$out/${model}_1x2_r$r.jsonl" >/dev/null
    one+=("$(ips "$out/${model}_1x2_r$r.jsonl")")
    mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 "$build/bin/train" \
      --model "$model" --threads 1 "${common[@]}" --log "$out/${model}_2x1_r$r.jsonl" >/dev/null
    two+=("$(ips "$out/${model}_2x1_r$r.jsonl")")
  done
  a=$(median "${one[@]}") b=$(median "${two[@]}")
  printf '| %s | %.1f (%s) | %.1f (%s) | %.2f |\n' "$model" "$a" "${one[*]}" "$b" "${two[*]}" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN { print b / a }')"
done
