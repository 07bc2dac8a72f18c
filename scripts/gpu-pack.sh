#!/usr/bin/env bash
# Prepares the one GPU call that scripts/gpu-run.sh makes on a lent GPU machine. That machine has
# CUDA 13, PyTorch with its nvidia-* libraries (cuDNN, cuBLAS), no network and none of our Debian
# packages, and a call carries at most 64 MiB. So, into .gpu/ (git-ignored):
#   .gpu/dsc.tar.xz   the programs of a CUDA build for sm_80/sm_90 with CPU code for any x86-64
#                     with AVX2 + FMA (-DDSC_NATIVE=OFF -march=x86-64-v3: the far CPU may differ from
#                     this one, but every GPU server since 2013 has those, and the CPU kernels'
#                     AVX2 build is their fast one there; -DDSC_MPI=OFF: one GPU, one process,
#                     and no Debian OpenMPI to carry; only tests/test_nccl needs libnccl, and
#                     finds PyTorch's there), and the shared libraries they load that are neither
#                     the C runtime nor CUDA's (OpenBLAS, spdlog, fmt, ...)
#   .gpu/cifar10/     a class-balanced CIFAR-10 subset in the binary layout (build/bin/pack):
#                     10,000 training and 2,000 test images, about 37 MB
# Then, from the device tool:  run(command="bash scripts/gpu-run.sh", carry=[".gpu"], timeout_s=600)
# Usage: scripts/gpu-pack.sh [--no-build]   (GPU_BUILD_DIR, default build-gpu; CIFAR10_DIR, default
# ../shared/cifar10)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${GPU_BUILD_DIR:-build-gpu}
data=${CIFAR10_DIR:-../shared/cifar10}
do_build=1
for a in "$@"; do
  case "$a" in
    --no-build) do_build=0 ;;
    *) echo "gpu-pack.sh: unknown option '$a' (expected --no-build)" >&2; exit 2 ;;
  esac
done
if [ "$do_build" = 1 ]; then
  BUILD_DIR=$build scripts/build.sh -DDSC_CUDA=ON -DDSC_NATIVE=OFF -DDSC_MPI=OFF \
    -DCMAKE_CXX_FLAGS=-march=x86-64-v3
fi
grep -q "DSC_HAVE_CUDA=1" "$build/build.ninja" 2>/dev/null ||
  { echo "gpu-pack.sh: $build was configured without CUDA (need nvcc and cuDNN here)" >&2; exit 1; }
grep -q "DSC_CUDA_EMU" "$build/build.ninja" &&
  { echo "gpu-pack.sh: $build is a host-emulator build, not a GPU one" >&2; exit 1; }
grep -q "MPI::MPI\|libmpi" "$build/build.ninja" &&
  { echo "gpu-pack.sh: $build links MPI; reconfigure it with -DDSC_MPI=OFF" >&2; exit 1; }

programs=(bin/train bin/bench bin/intensity bin/compare bin/train_steps bin/pack tests/test_cuda)
[ -x "$build/tests/test_nccl" ] && programs+=(tests/test_nccl)  # built where NCCL was found
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for p in "${programs[@]}"; do
  [ -x "$build/$p" ] || { echo "gpu-pack.sh: $build/$p missing (build first)" >&2; exit 1; }
  cp "$build/$p" "$stage/bin/"
done
# Shared libraries to take along: everything the programs load except the C runtime (the far side
# has its own, at least as new) and the CUDA libraries (the far side's toolkit and PyTorch's).
ldd "${programs[@]/#/$build/}" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | \
      libgcc_s.so* | libcuda* | libcublas* | libcudnn* | libnvidia* | libnvrtc* | libnccl*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
rm -rf .gpu && mkdir -p .gpu
tar -cJf .gpu/dsc.tar.xz -C "$stage" bin lib
echo "packed: $(ls "$stage/bin" | tr '\n' ' ')+ $(ls "$stage/lib" | tr '\n' ' ')"

"$build/bin/pack" "$data" .gpu/cifar10 --limit-train 10000 --limit-test 2000
size=$(du -sm .gpu | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cm | tail -1 | cut -f1)
echo "gpu-pack.sh: .gpu is ${size} MiB, the tracked tree ${tree} MiB (a call carries 64 MiB)"
[ $((size + tree)) -lt 62 ] || { echo "gpu-pack.sh: too large for one call" >&2; exit 1; }
