#!/usr/bin/env bash
# One 512x512 image from a folder with the exact SD1.5 shapes (all components, seeded random
# fp16 weights): load time (mmap + f16 -> f32 conversion), denoising time, VAE decode time and
# peak RSS. dato only: PyTorch's side of the same folder is bench/unet_cpu.sh's UNet ratio.
#   bash bench/generate_sd15.sh [steps] [build-dir]
# Makes the folder once with tools/make_sd15_random_folder.py (torch + diffusers) in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-20}"
build="${2:-build}"
folder=/tmp/sd15-random
[ -f "$folder/model_index.json" ] || python3 tools/make_sd15_random_folder.py --out "$folder"
mkdir -p results/bench
/usr/bin/time -v "$build/dato-generate" --model "$folder" --prompt "a photo of an astronaut riding a horse on mars" \
  --steps "$steps" --seed 1 --out results/bench/sd15-random.png 2> results/bench/generate_sd15.log >/dev/null
grep -E "loaded|denoised" results/bench/generate_sd15.log | tr '\r' '\n' | grep -E "loaded|denoised"
grep -E "Maximum resident|Elapsed \(wall" results/bench/generate_sd15.log
