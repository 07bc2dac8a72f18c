#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, in its
# own build folder (BUILD_DIR, default build-asan; CUDA off, -O1). DSC_SANITIZE builds with
# -fno-sanitize-recover=all, so any finding aborts its test and fails the run. Extra arguments go
# to cmake. Run by CI (.ci/run) after scripts/test.sh; the slowest training runs are left out
# (below).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-asan}
scripts/install-deps.sh
# Without MPI (OpenMPI's own allocations would be reported as leaks; the MPI tests are end-to-end
# runs, left out here like the others below, and report themselves skipped). -O1 and only what
# the tests run (the test programs, and train, intensity and pack, which tests start): the
# sanitized build is about half of CI's time, and -O1 halves it again.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
      -DDSC_CUDA=OFF -DDSC_MPI=OFF -DDSC_SANITIZE=address,undefined "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target test_core test_kernels test_data test_train \
      test_apps test_cuda test_dist train intensity pack
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# Left out to keep CI within its time: the end-to-end runs that train on real CIFAR-10 images
# (under ASan each takes minutes: "train on a few hundred real images" 6 min on 2 busy cores)
# and the gpu-run.sh self-tests, which train the same way. The code they run is covered under
# the sanitizers by the unit tests of each layer, the trainer's step and the models; run
# `DSC_SANITIZE_ALL=1 scripts/test-sanitize.sh` for everything.
slow='few hundred real images|resumed from any checkpoint|real train process|SIGKILL at random'
slow+='|gpu-run.sh'
if [ "${DSC_SANITIZE_ALL:-0}" = 1 ]; then slow='^$'; fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" -E "$slow"
