#!/usr/bin/env bash
# The main job from a fresh clone: install what is missing, build, and train the seed's depsep CNN
# on CIFAR-10 with the seed's recipe (arguments are passed on to train, e.g. --model normal).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec "${BUILD_DIR:-build}/bin/train" --model depsep --batch 128 "$@"
