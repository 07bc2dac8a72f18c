#!/usr/bin/env bash
# Data-parallel training on this machine (train/distributed.h), both models, the same global batch
# 128 on real CIFAR-10 images, alternating the two setups compared to share the machine's noise:
#   --compare processes (default): one process of 2 threads against `mpirun -np 2` ranks of 1
#     thread each;
#   --compare buckets: 2 ranks of 1 thread, the gradients averaged after the backward
#     (--bucket-kb 0) against averaged in buckets during it (--bucket-kb 256, the default).
# images/sec is train's own (global: every rank's images; the first 5 steps left out); with
# several ranks also the allreduce the backward did not hide and the rank skew, ms per step.
# Prints a markdown table with the median of the rounds and writes the logs to bench/results/mpi/.
#   BUILD_DIR=build-cpu bench/mpi_train.sh [--compare processes|buckets] [--rounds 2]
#       [--images 3840] [--models "normal depsep"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 images=3840 models="normal depsep" compare=processes build=${BUILD_DIR:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --compare) compare=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "unknown option $1 (expected --compare, --rounds, --images, --models)" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "mpirun missing: scripts/install-deps.sh" >&2; exit 1; }
out=bench/results/mpi
mkdir -p "$out"
common=(--batch 128 --epochs 1 --limit-train "$images" --limit-test 100 --no-progress)
ranks=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 "$build/bin/train"
  --threads 1)
case "$compare" in
  processes)
    names=(1x2 2x1) labels=("1 process x 2 threads" "2 ranks x 1 thread")
    setup() { if [ "$1" = 1x2 ]; then "$build/bin/train" --threads 2 "${@:2}"; else
      "${ranks[@]}" "${@:2}"; fi; } ;;
  buckets)
    names=(2x1_after 2x1_buckets) labels=("after the backward" "buckets of 256 KiB")
    setup() { if [ "$1" = 2x1_after ]; then "${ranks[@]}" --bucket-kb 0 "${@:2}"; else
      "${ranks[@]}" --bucket-kb 256 "${@:2}"; fi; } ;;
  *) echo "--compare $compare: expected processes or buckets" >&2; exit 2 ;;
esac
# The last epoch record's field $2 of log $1 ("-" when null); per step with $3 = steps.
field() { /usr/bin/python3 -c "import json,sys; e=[r for r in map(json.loads, open(sys.argv[1])) \
if r.get('type') == 'epoch'][-1][sys.argv[2]]; print('-' if e is None else \
(round(e, 1) if len(sys.argv) < 4 else round(1e3 * e / int(sys.argv[3]), 2)))" "$@"; }
median() { [ "$1" = - ] && { echo -; return; }
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
steps=$(( (images + 127) / 128 ))
echo "| model | ${labels[0]} img/s | ${labels[1]} img/s | ratio |" \
  "allreduce exposed, ms/step | rank skew, ms/step |"
# (the last two: medians, first setup / second; "-" for one process)
echo "|---|---|---|---|---|---|"
for model in $models; do
  ips_a=() ips_b=() exp_a=() exp_b=() skew_a=() skew_b=()
  for r in $(seq "$rounds"); do
    for name in "${names[@]}"; do
      log="$out/${model}_${name}_r$r.jsonl"
      setup "$name" --model "$model" "${common[@]}" --log "$log" >/dev/null
      ips=$(field "$log" images_per_sec)
      exposed=$(field "$log" allreduce_exposed_s "$steps")
      skew=$(field "$log" rank_skew_s "$steps")
      if [ "$name" = "${names[0]}" ]; then ips_a+=("$ips") exp_a+=("$exposed") skew_a+=("$skew")
      else ips_b+=("$ips") exp_b+=("$exposed") skew_b+=("$skew"); fi
    done
  done
  a=$(median "${ips_a[@]}") b=$(median "${ips_b[@]}")
  printf '| %s | %.1f (%s) | %.1f (%s) | %.2f | %s / %s | %s / %s |\n' "$model" "$a" "${ips_a[*]}" \
    "$b" "${ips_b[*]}" "$(awk -v a="$a" -v b="$b" 'BEGIN { print b / a }')" \
    "$(median "${exp_a[@]}")" "$(median "${exp_b[@]}")" "$(median "${skew_a[@]}")" \
    "$(median "${skew_b[@]}")"
done
