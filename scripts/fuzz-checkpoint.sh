#!/usr/bin/env bash
# Fuzzes the checkpoint reader (tests/fuzz/fuzz_checkpoint.cpp) with libFuzzer, ASan and UBSan.
#   scripts/fuzz-checkpoint.sh [SECONDS=300]
# Needs clang (Debian: apt-get install clang) and a CPU build (BUILD_DIR, default build-dev, made
# by scripts/build.sh). checkpoint.cpp itself is compiled into the harness with the sanitizers;
# the rest of the framework is linked from the build. The seed input is a valid checkpoint of the
# harness's model; crashes are written as crash-* files in the work folder (default
# /tmp/dsc-fuzz-checkpoint) and make the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS: expected a whole number, got '$seconds'" >&2; exit 2; }
build=${BUILD_DIR:-build-dev}
work=${FUZZ_DIR:-/tmp/dsc-fuzz-checkpoint}
command -v clang++ >/dev/null || { echo "clang++ not found (apt-get install clang)" >&2; exit 1; }
for lib in layers/libdsc_layers.a core/libdsc_core.a; do
  [ -f "$build/$lib" ] || { echo "$build/$lib missing: build first (scripts/build.sh)" >&2; exit 1; }
done
mkdir -p "$work/corpus"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -w \
  -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread \
  -DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB \
  tests/fuzz/fuzz_checkpoint.cpp layers/checkpoint.cpp \
  "$build/layers/libdsc_layers.a" "$build/core/libdsc_core.a" \
  -lopenblas -lspdlog -lfmt -fopenmp=libgomp -o "$work/fuzz_checkpoint"
: >"$work/empty"
FUZZ_SEED_OUT="$work/corpus/valid.ckpt" "$work/fuzz_checkpoint" "$work/empty" >/dev/null 2>&1
cd "$work"
./fuzz_checkpoint corpus -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
