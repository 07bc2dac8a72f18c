#!/usr/bin/env bash
# The examples (examples/) as a user builds them: dsc installed into a temporary prefix from
# ${BUILD_DIR:-build} (built first if needed, as scripts/build.sh does), examples/ configured and
# built against that prefix ONLY (find_package(dsc); the source tree is not on any include path),
# their ctest checks run, then the example program trains its registered "mobilenet" model and the
# seed's "depsep" for 2 epochs on the same 256 training and 128 test images of CIFAR-10, and
# `compare` lists the two runs side by side.
# The data folder is ${DSC_DATA:-../shared/cifar10}; without it the training run is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
work=${EXAMPLES_DIR:-$(mktemp -d /tmp/dsc-examples.XXXXXX)}
data=${DSC_DATA:-../shared/cifar10}
[ -f "$build/build.ninja" ] || scripts/build.sh
cmake --build "$build" -j "$(nproc)"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
echo "dsc installed into $work/prefix"
cmake -S examples -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" -j "$(nproc)"
ctest --test-dir "$work/build" --output-on-failure -j "$(nproc)"
if [ -d "$data/train" ] || [ -f "$data/data_batch_1.bin" ]; then
  # The example's model and a seed model, 2 epochs each on the same small subset, side by side.
  "$build/bin/pack" --limit-train 256 --limit-test 128 "$data" "$work/cifar-small" >/dev/null
  for model in mobilenet depsep; do
    "$work/build/mobilenet/mobilenet" --model "$model" --epochs 2 --batch 64 --no-progress \
      --data "$work/cifar-small" --log "$work/$model.jsonl" >/dev/null
    grep -q '"type":"summary"' "$work/$model.jsonl" || { echo "$model: no summary in its run log" >&2; exit 1; }
  done
  "$build/bin/compare" "$work/mobilenet.jsonl" "$work/depsep.jsonl" | tee "$work/compare.md"
  grep -q '| mobilenet |' "$work/compare.md" && grep -q '| depsep |' "$work/compare.md" ||
    { echo "compare did not list both runs" >&2; exit 1; }
  echo "mobilenet and depsep: 2 epochs each, logs and comparison in $work"
else
  echo "no CIFAR-10 at $data (set DSC_DATA): the training run of the example was skipped" >&2
fi
