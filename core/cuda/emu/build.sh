#!/bin/bash
# Builds tests/cuda against the host emulator of the CUDA backend (see README.md), with ASan + UBSan.
# Usage: core/cuda/emu/build.sh [build dir with core/libdsc_cpu_kernels.a, default build]
# Output: $EMU_OUT (default /tmp/dsc-emu)/test_cuda_emu. Run with ASAN_OPTIONS=detect_leaks=0.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
BUILD="${1:-$REPO/build}"
OUT="${EMU_OUT:-/tmp/dsc-emu}"
mkdir -p "$OUT/src" "$OUT/obj"
python3 "$HERE/transform.py" "$REPO" "$OUT/src"
# A smaller copy of the training test (8 channels, 16x16 images, batch 4): the full one takes an hour.
sed -e 's/opt.channels = 16;/opt.channels = 8; opt.image = 16;/' \
    -e 's/make_batches(6, 16, 77)/make_batches(6, 4, 77)/' -e 's/{n, 3, 32, 32}/{n, 3, 16, 16}/' \
    -e 's/TEST_CASE("cuda training: /TEST_CASE("emu small training: /' \
    "$REPO/tests/cuda/test_cuda_training.cpp" > "$OUT/test_emu_small_training.cpp"
CXX="g++ -std=c++20 -O1 -g -fopenmp -march=native -fsanitize=address,undefined -fno-omit-frame-pointer
  -DDSC_HAVE_CUDA=1 -DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB
  -I$OUT/src/inc -I$REPO -I$REPO/tests -I/usr/include/x86_64-linux-gnu/openblas-pthread -isystem /usr/local/cuda/include -w"
# test_cuda_train.cpp runs the train program (apps/, data/): too slow here, and not emulated.
SRCS="$(ls "$REPO"/core/*.cpp "$REPO"/layers/*.cpp "$REPO"/optim/*.cpp "$REPO"/tests/main.cpp \
         "$REPO"/tests/cuda/*.cpp "$OUT"/src/*.cpp | grep -v test_cuda_train.cpp) \
      $HERE/emu_runtime.cpp $OUT/test_emu_small_training.cpp"
OBJS=""
for s in $SRCS; do
  o="$OUT/obj/$(echo "$s" | tr '/' '_').o"
  OBJS="$OBJS $o"
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$HERE/emu_cuda.h" -nt "$o" ]; then
    case "$s" in
      "$OUT"/src/*) $CXX -include "$HERE/emu_cuda.h" -c "$s" -o "$o" & ;;
      *) $CXX -c "$s" -o "$o" & ;;
    esac
    if [ "$(jobs -r | wc -l)" -ge "$(nproc)" ]; then wait -n; fi
  fi
done
wait
$CXX $OBJS -o "$OUT/test_cuda_emu" "$BUILD/core/libdsc_cpu_kernels.a" -lopenblas -lspdlog -lfmt \
  -lpthread -ldl
echo "built $OUT/test_cuda_emu"
