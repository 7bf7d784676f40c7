#!/usr/bin/env bash
# UNet forward on the CPU, dato side by side with PyTorch (diffusers' UNet2DConditionModel,
# same config, seeded random weights, f32, SDPA) in one run, same thread count.
#   bash bench/unet_cpu.sh [threads] [build-dir]
# Needs the Release build (bench_unet) and python3 with torch + diffusers (tools/requirements.txt).
# Prints a markdown table for docs/BENCHMARKS.md; the raw JSON lines go to results/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
build="${2:-build}"
out=results/bench
mkdir -p "$out"
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"

sd15=tests/fixtures/manifests/sd15_config.json
tiny=tests/fixtures/unet/sd15/unet/config.json
run_pair() { # name config latent batch iters
  local name=$1 cfg=$2 lat=$3 b=$4 it=$5
  "$build/bench_unet" --config "$cfg" --latent "$lat" --batch "$b" --threads "$threads" --iters "$it" --warmup 1 \
    2>/dev/null > "$out/$name-dato.json"
  python3 bench/unet_torch.py --config "$cfg" --latent "$lat" --batch "$b" --threads "$threads" --iters "$it" \
    --warmup 1 2>/dev/null > "$out/$name-torch.json"
  python3 - "$name" "$out/$name-dato.json" "$out/$name-torch.json" <<'PY'
import json, sys
name, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
r = b["ms_per_forward_median"] / a["ms_per_forward_median"]
print(f"| {name} | {a['latent']}x{a['latent']} | {a['batch']} | {a['threads']} | {a['ms_per_forward_median']:.1f} | "
      f"{b['ms_per_forward_median']:.1f} | {r:.2f}x | {a['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} |")
PY
}

echo "| config | latent | batch | threads | dato ms | PyTorch ms | dato speedup | dato RSS MB | PyTorch RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
run_pair tiny "$tiny" 32 2 20
run_pair sd15 "$sd15" 32 2 3

# SD1.5 at its native 64x64 latent, batch 2: time and peak memory (dato only).
"$build/bench_unet" --config "$sd15" --latent 64 --batch 2 --threads "$threads" --iters 1 --warmup 1 \
  2>/dev/null > "$out/sd15-64-dato.json"
python3 - "$out/sd15-64-dato.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
print(f"\nSD1.5 64x64 batch 2 (dato): {a['ms_per_forward_median']:.0f} ms per forward, peak RSS {a['peak_rss_mb']:.0f} MB "
      f"(weights {a['weights_mb']:.0f} MB + workspace {a['workspace_mb']:.0f} MB; budget weights + 2048 MB)")
PY
