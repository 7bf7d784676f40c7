#!/usr/bin/env bash
# Builds with the CUDA backend and runs the gpu-labelled tests. Run on a machine with nvcc and a GPU:
#   tests/gpu/run.sh [build-dir]      (default build-gpu; extra ctest arguments via CTEST_ARGS)
# A gpu test exits 77 when the build has no CUDA or the machine no GPU; ctest lists it as skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-gpu}"
command -v nvcc >/dev/null || { echo "nvcc not found: the CUDA backend cannot be built" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cmake -S . -B "$build_dir" -DDATO_CUDA=ON -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" -L gpu --output-on-failure ${CTEST_ARGS:-}
