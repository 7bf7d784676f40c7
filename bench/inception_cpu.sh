#!/usr/bin/env bash
# Inception-v3 pool3 features on the CPU: dato vs PyTorch (pytorch-fid's InceptionV3), same
# threads, one run. Needs the Release build and python3 with torch + pytorch-fid + torchvision.
#   bash bench/inception_cpu.sh [threads] [batch] [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
batch="${2:-16}"
build="${3:-build}"
export OMP_NUM_THREADS="$threads"
a=$("$build/bench_inception" --batch "$batch" --threads "$threads" --iters 3)
b=$(python3 bench/inception_torch.py --batch "$batch" --threads "$threads" --iters 3 2>/dev/null)
python3 - "$a" "$b" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| impl | batch | threads | images/s | ms per batch | peak RSS MB |")
print("|---|---|---|---|---|---|")
for r in (a, b):
    print(f"| {r['impl']} | {r['batch']} | {r['threads']} | {r['images_per_s']} | {r['ms_per_batch']} | {r['peak_rss_mb']} |")
print(f"\ndato / PyTorch throughput: {a['images_per_s'] / b['images_per_s']:.2f}x")
PY
