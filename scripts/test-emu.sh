#!/usr/bin/env bash
# The CUDA backend under the host emulator (tests/cuda/emu/README.md), with AddressSanitizer and
# UndefinedBehaviorSanitizer: configures ${EMU_BUILD_DIR:-build-emu}, builds the CUDA test program and
# runs every tests/cuda case the emulator can run (those meaningful only on a real GPU skip
# themselves). Needs the CUDA toolkit's headers, not a GPU. Extra arguments go to ctest, e.g.
# scripts/test-emu.sh -R depsep.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EMU_BUILD_DIR:-build-emu}
# -O1: sanitizer builds at -O3 take several times longer to compile, for little gain here.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
      -DDSC_CUDA_EMU=ON -DDSC_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j "$(nproc)" --target test_cuda
# The runtime's objects live until exit on purpose (tensors may be freed during static destruction).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
ctest --test-dir "$build" -L cuda --output-on-failure -j "$(nproc)" "$@"
