#!/usr/bin/env bash
# Fuzzes one of the readers of files users pass in, with libFuzzer, ASan and UBSan:
#   scripts/fuzz.sh TARGET [SECONDS=300]
#
#   TARGET      harness (tests/fuzz/)   code under test
#   checkpoint  fuzz_checkpoint.cpp     layers/checkpoint.cpp: load_checkpoint, read_checkpoint_meta
#   cifar10     fuzz_cifar10.cpp        data/cifar10.cpp: binary batch records, batches.meta.txt
#   image       fuzz_image.cpp          data/image_folder.cpp: decode_image (stb_image PNG, JPEG)
#   run_log     fuzz_run_log.cpp        train/run_log.cpp: compare's JSON-lines reader and table
#
# Needs clang++ with libFuzzer (Debian: clang; scripts/install-deps.sh installs it). The code under
# test is compiled into the harness with the sanitizers; `checkpoint` links the rest of the
# framework from a CPU build (BUILD_DIR, default build, made by scripts/build.sh), the others need
# no build. Seeds come from tests/fuzz/corpus/TARGET (checkpoint: a valid checkpoint of the
# harness's model, written fresh each run so it follows the format). New inputs go to
# $FUZZ_DIR/corpus (default /tmp/dsc-fuzz-TARGET); a crash is written there as crash-* and makes
# the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/fuzz.sh checkpoint|cifar10|image|run_log [SECONDS]"
target=${1:?$usage}
seconds=${2:-300}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS: expected a whole number, got '$seconds'" >&2; exit 2; }
build=${BUILD_DIR:-build}
work=${FUZZ_DIR:-/tmp/dsc-fuzz-$target}
command -v clang++ >/dev/null || { echo "clang++ not found (scripts/install-deps.sh installs clang)" >&2; exit 1; }

libs=()
case "$target" in
  checkpoint)
    sources=(layers/checkpoint.cpp)
    for lib in layers/libdsc_layers.a core/libdsc_core.a; do
      [ -f "$build/$lib" ] || { echo "$build/$lib missing: build first (scripts/build.sh)" >&2; exit 1; }
      libs+=("$build/$lib")
    done
    libs+=(-lopenblas -fopenmp=libgomp)
    # A build with the CUDA backend has it inside libdsc_core.a: link its libraries as CMake found
    # them (nothing of it runs: the harness stays on the CPU).
    for v in CUDA_cudart_LIBRARY CUDA_cublas_LIBRARY CUDA_cublasLt_LIBRARY CUDNN_LIBRARY; do
      path=$(sed -n "s/^$v:FILEPATH=//p" "$build/CMakeCache.txt" 2>/dev/null || true)
      if [ -n "$path" ] && [ -f "$path" ] && grep -q '^DSC_CUDA:BOOL=ON' "$build/CMakeCache.txt"; then
        libs+=("$path" "-Wl,-rpath,$(dirname "$path")")
      fi
    done
    max_len=4096 ;;
  cifar10) sources=(data/cifar10.cpp data/image_folder.cpp data/dataset.cpp); max_len=10000 ;;
  image) sources=(data/image_folder.cpp data/cifar10.cpp data/dataset.cpp); max_len=8192 ;;
  run_log) sources=(train/run_log.cpp core/format.cpp); max_len=4096 ;;
  *) echo "unknown TARGET '$target'; $usage" >&2; exit 2 ;;
esac

mkdir -p "$work/corpus"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -w \
  -I. -I/usr/include/stb -I/usr/include/x86_64-linux-gnu/openblas-pthread \
  -DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB \
  "tests/fuzz/fuzz_$target.cpp" "${sources[@]}" "${libs[@]}" -lspdlog -lfmt -pthread \
  -o "$work/fuzz_$target"
seeds=()
if [ "$target" = checkpoint ]; then
  : >"$work/empty"
  FUZZ_SEED_OUT="$work/corpus/valid.ckpt" "$work/fuzz_$target" "$work/empty" >/dev/null 2>&1
else
  seeds=("$PWD/tests/fuzz/corpus/$target")
fi
cd "$work"
# -timeout: an input taking over 10 s is reported as a hang.
"./fuzz_$target" corpus "${seeds[@]}" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
  -print_final_stats=1
