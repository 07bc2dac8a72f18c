#!/usr/bin/env bash
# CI's fuzzing step: every target of scripts/fuzz.sh (checkpoint, cifar10, image, run_log) for a
# short bounded time, FUZZ_SECONDS each (default 15), from the committed seeds in a fresh work
# folder; any crash, leak, undefined behaviour or broken harness contract fails the step and
# prints the end of that target's log. The checkpoint target links the CPU build that
# scripts/test.sh made (BUILD_DIR, default build). Without clang++ nothing runs and a line says
# so (scripts/install-deps.sh installs clang and its libFuzzer runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-15}
if ! command -v clang++ >/dev/null; then
  echo "fuzz-ci: clang++ not found: the fuzz targets did not run (scripts/install-deps.sh installs clang)" >&2
  exit 0
fi
root=$(mktemp -d /tmp/dsc-fuzz-ci.XXXXXX)
for target in checkpoint cifar10 image run_log; do
  log="$root/$target.log"
  if ! FUZZ_DIR="$root/$target" scripts/fuzz.sh "$target" "$seconds" >"$log" 2>&1; then
    tail -n 80 "$log" >&2
    echo "fuzz-ci: $target FAILED; its log and any crash-* input are in $root" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz-ci: $target: ${runs:-?} inputs in $seconds s, no finding"
done
rm -rf "$root"
