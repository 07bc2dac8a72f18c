#!/usr/bin/env bash
# The whole test suite from a fresh clone: install what is missing, build, run ctest.
# GPU tests carry the ctest label "cuda" and are reported as skipped on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
