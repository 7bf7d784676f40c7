#!/usr/bin/env bash
# UNet forward on the CPU: dato side by side with PyTorch (diffusers' UNet2DConditionModel, same
# config, seeded random weights, f32, SDPA) and, optionally, with dato built from an earlier commit,
# in interleaved rounds at the same thread count. Each round runs every side once; the speedup is
# the median over rounds of the paired ratio (this machine is noisy), its range the least and
# greatest pair.
#   bash bench/unet_cpu.sh [threads] [build-dir] [rounds] [old-build-dir] [cases]
#   bash bench/unet_cpu.sh 2 build 3 /tmp/dato-prev/build "default-40 default-128 sd15-32 sd15-64"
# Cases: default-40, default-128 (the embedded model's UNet at 40 and 128 rows = images x CFG, 16
# text tokens), tiny-32 (tests/fixtures/unet/sd15), sd15-32, sd15-64 (SD1.5's shapes at 32x32 and
# its native 64x64 latents, batch 2 = one guided step). Needs the Release build's bench_unet and
# python3 with torch + diffusers (tools/requirements.txt). Prints a markdown table for
# docs/BENCHMARKS.md; the raw JSON lines go to results/bench/unet_cpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
build="${2:-build}"
rounds="${3:-3}"
old="${4:-}"
cases="${5:-default-40 default-128 sd15-32 sd15-64}"
out=results/bench/unet_cpu
mkdir -p "$out"
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" OMP_WAIT_POLICY=PASSIVE

default=models/fashion-sd/unet/config.json
tiny=tests/fixtures/unet/sd15/unet/config.json
sd15=tests/fixtures/manifests/sd15_config.json
case_args() { # name -> config latent batch seq iters
  case "$1" in
    default-40) echo "$default 14 40 16 20" ;;
    default-128) echo "$default 14 128 16 10" ;;
    tiny-32) echo "$tiny 32 2 77 20" ;;
    sd15-32) echo "$sd15 32 2 77 3" ;;
    sd15-64) echo "$sd15 64 2 77 1" ;;
    *) echo "unet_cpu.sh: unknown case '$1' (default-40, default-128, tiny-32, sd15-32, sd15-64)" >&2; exit 2 ;;
  esac
}

header="| case | latent | rows | threads | dato ms | PyTorch ms | vs PyTorch (median of pairs, range) |"
rule="|---|---|---|---|---|---|---|"
if [ -n "$old" ]; then header+=" old dato ms | vs old (median, range) |"; rule+="---|---|"; fi
header+=" dato RSS MB | PyTorch RSS MB |"; rule+="---|---|"
echo "$header"
echo "$rule"
for name in $cases; do
  read -r cfg lat b seq it <<<"$(case_args "$name")"
  for r in $(seq 1 "$rounds"); do
    "$build/bench_unet" --config "$cfg" --latent "$lat" --batch "$b" --seq "$seq" --threads "$threads" --iters "$it" \
      --warmup 1 2>/dev/null >"$out/$name-dato-$r.json"
    python3 bench/unet_torch.py --config "$cfg" --latent "$lat" --batch "$b" --seq "$seq" --threads "$threads" \
      --iters "$it" --warmup 1 2>/dev/null >"$out/$name-torch-$r.json"
    if [ -n "$old" ]; then
      "$old/bench_unet" --config "$cfg" --latent "$lat" --batch "$b" --seq "$seq" --threads "$threads" --iters "$it" \
        --warmup 1 2>/dev/null >"$out/$name-old-$r.json"
    fi
  done
  python3 - "$out" "$name" "$rounds" "$old" <<'PY'
import json, statistics, sys
out, name, rounds, old = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
load = lambda side, r: json.load(open(f"{out}/{name}-{side}-{r}.json"))
ms = lambda side: [load(side, r)["ms_per_forward_median"] for r in range(1, rounds + 1)]
dato, torch = ms("dato"), ms("torch")
vs_torch = [t / d for t, d in zip(torch, dato)]
first, tfirst = load("dato", 1), load("torch", 1)
row = (f"| {name} | {first['latent']}x{first['latent']} | {first['batch']} | {first['threads']} | "
       f"{statistics.median(dato):.1f} | {statistics.median(torch):.1f} | "
       f"{statistics.median(vs_torch):.2f}x ({min(vs_torch):.2f}-{max(vs_torch):.2f}) |")
if old:
    o = ms("old")
    vs_old = [a / d for a, d in zip(o, dato)]
    row += f" {statistics.median(o):.1f} | {statistics.median(vs_old):.2f}x ({min(vs_old):.2f}-{max(vs_old):.2f}) |"
row += f" {first['peak_rss_mb']:.0f} | {tfirst['peak_rss_mb']:.0f} |"
print(row)
PY
done
