#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, in its
# own build folder (BUILD_DIR, default build-asan; CUDA off). DSC_SANITIZE builds with
# -fno-sanitize-recover=all, so any finding aborts its test and fails the run. Extra arguments go
# to cmake. Run by CI (.ci/run) after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-asan}
scripts/install-deps.sh
scripts/build.sh -DDSC_CUDA=OFF -DDSC_SANITIZE=address,undefined "$@"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
