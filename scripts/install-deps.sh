#!/usr/bin/env bash
# Installs the Debian packages dsc builds with, skipping what is already there.
# CUDA (nvcc, cuDNN) is optional and not installed here: without it the CPU backend is built.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config libspdlog-dev libfmt-dev doctest-dev libstb-dev
      libopenblas-dev libcli11-dev nlohmann-json3-dev)
# clang and its libFuzzer/sanitizer runtimes (only recommended by clang, so named here): the fuzz
# targets that CI runs (scripts/fuzz.sh, scripts/fuzz-ci.sh).
pkgs+=(clang libclang-rt-dev)
if [ "${DSC_WITH_PYTHON:-0}" = 1 ]; then pkgs+=(python3-torch python3-matplotlib); fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
# MPI (optional): `mpirun -np N train` and the tests of tests/dist/. Without it dsc builds for one
# process and those tests are reported as skipped, so a failed install is a warning.
mpi_pkgs=()
for p in openmpi-bin libopenmpi-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || mpi_pkgs+=("$p")
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#mpi_pkgs[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#mpi_pkgs[@]} -gt 0 ]; then
  echo "install-deps: installing ${mpi_pkgs[*]} (MPI, optional)"
  $SUDO apt-get install -y -qq --no-install-recommends "${mpi_pkgs[@]}" ||
    echo "install-deps: WARNING: installing MPI failed: train builds for one process only and" \
         "the MPI tests (tests/dist) will be reported as skipped" >&2
fi
