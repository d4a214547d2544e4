#!/usr/bin/env bash
# Configures and builds strata into build/ (or the directory given as $1) with Ninja.
# Extra arguments are passed to cmake, e.g. scripts/build.sh build-asan -DSTRATA_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compiler-env.sh
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
