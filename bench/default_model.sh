#!/usr/bin/env bash
# The embedded default model (models/fashion-sd) on the CPU, in one run:
# 1. its UNet, dato side by side with PyTorch (diffusers' UNet2DConditionModel, the same config,
#    seeded random weights, f32, SDPA, 16 context tokens) at 40 rows (the search's 20 images x
#    guidance) and 128 rows (64 images x guidance), same thread count;
# 2. quality by the C engine at the model's defaults: class accuracy of 1,000 images (100 per class
#    prompt) with a sample grid, then FID of per_class x 10 images against the test set next to the
#    training set's FID (the floor).
#   bash bench/default_model.sh [threads] [build-dir] [per-class-for-FID]
# Needs the Release build and python3 with torch + diffusers (tools/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
build="${2:-build}"
per_class="${3:-1000}"
out=results/bench
mkdir -p "$out"
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"
cfg=models/fashion-sd/unet/config.json

echo "| rows | threads | dato ms | PyTorch ms | dato speedup | dato UNet evals/s |"
echo "|---|---|---|---|---|---|"
for rows in 40 128; do
  "$build/bench_unet" --config "$cfg" --latent 14 --batch "$rows" --seq 16 --threads "$threads" --iters 20 \
    --warmup 2 2>/dev/null > "$out/fashion-sd-$rows-dato.json"
  python3 bench/unet_torch.py --config "$cfg" --latent 14 --batch "$rows" --seq 16 --threads "$threads" --iters 20 \
    --warmup 2 2>/dev/null > "$out/fashion-sd-$rows-torch.json"
  python3 - "$rows" "$out/fashion-sd-$rows-dato.json" "$out/fashion-sd-$rows-torch.json" <<'PY'
import json, sys
rows, a, b = int(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
ms_a, ms_b = a["ms_per_forward_median"], b["ms_per_forward_median"]
print(f"| {rows} | {a['threads']} | {ms_a:.1f} | {ms_b:.1f} | {ms_b / ms_a:.2f}x | {1e3 * rows / ms_a:.0f} |")
PY
done

echo
"$build/bench_default_model" --per-class 100 --batch 50 --threads "$threads" --grid docs/default_model_samples.png
echo
"$build/bench_default_model" --per-class "$per_class" --batch 50 --threads "$threads" --seed 1000
