#!/usr/bin/env bash
# Schedule presets side by side with the baseline, in one run: the per-image denoising time of
# each preset and of the baseline (measured back to back by dato-generate --compare-baseline),
# the analytic MAC ratio, and how far the final latents move from the baseline's.
#   bash bench/dato_presets.sh [model] [size] [steps] [build-dir]
# Default model: the SD1.5-shaped random folder of tools/make_sd15_random_folder.py at 256x256.
# Quality (FID with the default feature network) comes with the metrics and default-model issues.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-/tmp/sd15-random}"
size="${2:-256}"
steps="${3:-10}"
build="${4:-build}"
[ -e "$model" ] || python3 tools/make_sd15_random_folder.py --out "$model"
out=results/bench/presets
mkdir -p "$out"
prompt="a photo of an astronaut riding a horse on mars"
"$build/dato-generate" --model "$model" --prompt "$prompt" --size "$size" --steps "$steps" --sampler ddim --seed 1 \
  --out "$out/baseline.png" --latents-out "$out/baseline.safetensors" >/dev/null 2>&1
echo "| preset | MAC ratio | denoise s | baseline s (same run) | measured speedup | max rel. latent diff vs baseline |"
echo "|---|---|---|---|---|---|"
# deepcache:3 is DeepCache's default (branch 0); the branch=1 rows are docs/BENCHMARKS.md's deepcache:3 and :5.
for preset in deepcache:3 deepcache:3:branch=1 deepcache:5:branch=1 tome:0.5 dato-paper; do
  name=${preset//:/-}
  log="$out/$name.log"
  "$build/dato-generate" --model "$model" --prompt "$prompt" --size "$size" --steps "$steps" --sampler ddim --seed 1 \
    --schedule "$preset" --compare-baseline --out "$out/$name.png" --latents-out "$out/$name.safetensors" \
    > "$log" 2>/dev/null
  python3 - "$preset" "$log" "$out/baseline.safetensors" "$out/$name.safetensors" <<'PY'
import re, sys
from safetensors.numpy import load_file
preset, log, base, mine = sys.argv[1:]
text = open(log).read()
macs = re.search(r"([0-9.]+)x fewer MACs", text).group(1)
m = re.search(r"denoising ([0-9.]+) s with the schedule, ([0-9.]+) s baseline: measured speedup ([0-9.]+)x", text)
a, b = load_file(base)["latents"], load_file(mine)["latents"]
d = abs(a - b).max() / abs(a).max()
print(f"| {preset} | {macs}x | {m.group(1)} | {m.group(2)} | {m.group(3)}x | {d:.3f} |")
PY
done
