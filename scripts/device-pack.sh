#!/usr/bin/env bash
# Prepares a run on a lent GPU machine (see scripts/device-run.sh). That machine has CUDA 13.0,
# PyTorch with its nvidia-* libraries (cuDNN, cuBLAS) and python3-matplotlib's equivalent, but none
# of our Debian packages and no network, and each call may carry at most 64 MiB. So:
#   .device/bin/dsc-bin.tar.xz        the programs built here (CUDA on) and the non-system,
#                                     non-CUDA shared libraries they load (OpenBLAS, spdlog, fmt, ...)
#   .device/p1 ... .device/p4         CIFAR-10 in four parts of 48 MB, one per call
# .device/ is git-ignored. The calls, in this order, each carrying .device/bin and one part:
#   bash scripts/device-run.sh tests    (carry .device/bin .device/p1)
#   bash scripts/device-run.sh layer    (carry .device/bin .device/p2)
#   bash scripts/device-run.sh steps    (carry .device/bin .device/p3)
#   bash scripts/device-run.sh train    (carry .device/bin .device/p4)
# Usage: scripts/device-pack.sh [--no-build] [--no-data]   (BUILD_DIR, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
do_build=1 do_data=1
for a in "$@"; do
  case "$a" in
    --no-build) do_build=0 ;;
    --no-data) do_data=0 ;;
    *) echo "device-pack.sh: unknown option '$a' (expected --no-build, --no-data)" >&2; exit 2 ;;
  esac
done
if [ "$do_build" = 1 ]; then
  scripts/build.sh -DDSC_CUDA=ON
fi
grep -q "DSC_HAVE_CUDA=1" "$build/build.ninja" 2>/dev/null ||
  { echo "device-pack.sh: $build was configured without CUDA (need nvcc and cuDNN here)" >&2; exit 1; }

programs=(bin/train bin/bench bin/intensity bin/compare bin/train_steps tests/test_cuda)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for p in "${programs[@]}"; do
  [ -x "$build/$p" ] || { echo "device-pack.sh: $build/$p missing (build first)" >&2; exit 1; }
  cp "$build/$p" "$stage/bin/"
done
# Shared libraries to take along: everything the programs load except the C runtime (the far side
# has its own, at least as new) and the CUDA libraries (the far side's toolkit and PyTorch's).
ldd "${programs[@]/#/$build/}" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | \
      libgcc_s.so* | libcuda* | libcublas* | libcudnn* | libnvidia* | libnvrtc*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
mkdir -p .device/bin
tar -cJf .device/bin/dsc-bin.tar.xz -C "$stage" bin lib
echo "packed: $(ls "$stage/lib" | tr '\n' ' ')"
ls -l .device/bin/dsc-bin.tar.xz

if [ "$do_data" = 1 ]; then
  [ -d ../shared/cifar10/train ] || { echo "device-pack.sh: no ../shared/cifar10 here" >&2; exit 1; }
  rm -rf .device/p1 .device/p2 .device/p3 .device/p4
  ../shared/tools/pack-cifar10-for-device.sh ../shared >/dev/null
  i=1
  for part in .device/cifar10.tar.part-*; do
    mkdir -p ".device/p$i"
    mv "$part" ".device/p$i/"
    i=$((i + 1))
  done
  [ "$i" = 5 ] || { echo "device-pack.sh: expected 4 data parts, got $((i - 1))" >&2; exit 1; }
  du -sh .device/p*
fi
