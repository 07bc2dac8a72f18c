#!/usr/bin/env bash
# The examples (examples/) as a user builds them: dsc installed into a temporary prefix from
# ${BUILD_DIR:-build} (built first if needed, as scripts/build.sh does), examples/ configured and
# built against that prefix ONLY (find_package(dsc); the source tree is not on any include path),
# their ctest checks run, then a short training run of the example program on a subset of
# CIFAR-10: one epoch on 256 training and 128 test images with the registered "mobilenet" model.
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
  "$work/build/mobilenet/mobilenet" --model mobilenet --epochs 1 --batch 64 --limit-train 256 \
    --limit-test 128 --data "$data" --log "$work/mobilenet.jsonl"
  grep -q '"type":"epoch"' "$work/mobilenet.jsonl" || { echo "no epoch line in the run log" >&2; exit 1; }
  echo "mobilenet: one epoch trained, log $work/mobilenet.jsonl"
else
  echo "no CIFAR-10 at $data (set DSC_DATA): the training run of the example was skipped" >&2
fi
