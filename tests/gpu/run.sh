#!/usr/bin/env bash
# Builds with the CUDA backend and runs the gpu-labelled tests. Run on a machine with nvcc and a GPU:
#   tests/gpu/run.sh [--bench] [build-dir]   (default build-gpu; extra ctest arguments via CTEST_ARGS)
# A gpu test exits 77 when the build has no CUDA or the machine no GPU; ctest lists it as skipped.
# --bench then also runs bench/gpu.sh on the same build (its table: results/bench/gpu.md, or
# GPU_RESULTS). Ends with a summary: the tests' pass/fail/skip counts and the benchmark's status.
set -uo pipefail
cd "$(dirname "$0")/../.."
bench=0
if [ "${1:-}" = "--bench" ]; then
  bench=1
  shift
fi
build_dir="${1:-build-gpu}"
results="${GPU_RESULTS:-results/bench/gpu.md}"
command -v nvcc >/dev/null || { echo "nvcc not found: the CUDA backend cannot be built" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cmake -S . -B "$build_dir" -DDATO_CUDA=ON -DCMAKE_BUILD_TYPE=Release || exit 1
cmake --build "$build_dir" -j "$(nproc)" || exit 1

log=$(mktemp)
ctest --test-dir "$build_dir" -L gpu --output-on-failure ${CTEST_ARGS:-} 2>&1 | tee "$log"
suite_rc=${PIPESTATUS[0]}

bench_rc=0
if [ "$bench" = 1 ]; then
  bash bench/gpu.sh "$build_dir" "$results"
  bench_rc=$?
fi

echo
echo "==== summary ===="
grep -E "tests passed|tests failed" "$log" || echo "ctest printed no totals (exit $suite_rc)"
grep -E "\*\*\*Skipped" "$log" | sed 's/^/skipped: /' || true
grep -E "\*\*\*(Failed|Not Run|Exception|Timeout)" "$log" | sed 's/^/FAILED: /' || true
if [ "$bench" = 1 ]; then
  if [ "$bench_rc" = 0 ]; then
    echo "benchmark: $results written$([ -s "${results%.md}-raw/notes.txt" ] && echo ", with notes (failed or skipped rows):")"
    [ -s "${results%.md}-raw/notes.txt" ] && sed 's/^/  /' "${results%.md}-raw/notes.txt"
  else
    echo "benchmark: bench/gpu.sh FAILED (exit $bench_rc)"
  fi
fi
rm -f "$log"
[ "$suite_rc" = 0 ] && [ "$bench_rc" = 0 ]
