#!/usr/bin/env bash
# stable-diffusion.cpp, dato and PyTorch on the same SD1.5-shaped weights, in one run (issue 22):
# a text-to-image call of sd.cpp and of dato-generate at 256 and 512 px (32x32 and 64x64 latents),
# euler, guidance 7 (every step one UNet pass on cond + uncond), and PyTorch's UNet forward at the
# same latents, batch 2. Time and peak RSS; same thread count everywhere.
#   bash bench/sdcpp_side_by_side.sh [threads] [build-dir] [sdcpp-binary] [steps] [sizes]
# Defaults: 2 threads, build, /tmp/sdcpp/build/bin/sd-cli (built by bench/build_sdcpp.sh when
# missing), 4 steps, sizes "256 512" (pixels). Weights: /tmp/sd15-random
# (tools/make_sd15_random_folder.py, f16) and the same tensors as one LDM single file
# /tmp/sd15-random.safetensors (tools/diffusers_to_ldm.py, f16), made once; sd.cpp and dato both read
# the single file. Logs go to results/bench/sdcpp/; prints a markdown table for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
build="${2:-build}"
sd="${3:-/tmp/sdcpp/build/bin/sd-cli}"
steps="${4:-4}"
sizes="${5:-256 512}"
folder=/tmp/sd15-random
file=/tmp/sd15-random.safetensors
out=results/bench/sdcpp
prompt="a photo of a cat"
mkdir -p "$out"
export OMP_NUM_THREADS="$threads" OMP_WAIT_POLICY=PASSIVE

[ -x "$sd" ] || sd=$(bash bench/build_sdcpp.sh | tail -1)
[ -f "$folder/model_index.json" ] || python3 tools/make_sd15_random_folder.py --out "$folder" >&2
[ -f "$file" ] || python3 tools/diffusers_to_ldm.py --folder "$folder" --out "$file" >&2

timed() { # log command...: the command's output and /usr/bin/time -v's report go to log
  local log=$1
  shift
  /usr/bin/time -v "$@" > "$log" 2>&1
}
for px in $sizes; do
  timed "$out/sdcpp-f16-$px.log" "$sd" -m "$file" -p "$prompt" -W "$px" -H "$px" --steps "$steps" \
    --sampling-method euler --cfg-scale 7 -t "$threads" -s 0 -o "$out/sdcpp-f16-$px.png" -v
  timed "$out/sdcpp-f32-$px.log" "$sd" -m "$file" --type f32 -p "$prompt" -W "$px" -H "$px" --steps "$steps" \
    --sampling-method euler --cfg-scale 7 -t "$threads" -s 0 -o "$out/sdcpp-f32-$px.png" -v
  timed "$out/dato-$px.log" "$build/dato-generate" --model "$file" --prompt "$prompt" --size "$px" \
    --steps "$steps" --sampler euler --guidance 7 --seed 0 --threads "$threads" --out "$out/dato-$px.png"
  python3 bench/unet_torch.py --config tests/fixtures/manifests/sd15_config.json --latent $((px / 8)) \
    --batch 2 --threads "$threads" --iters 2 --warmup 1 2> /dev/null > "$out/torch-$px.json"
done

python3 - "$out" "$steps" $sizes <<'PY'
import json, re, statistics, sys
out, steps, sizes = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3:]]

def grab(text, pattern, path):
    m = re.findall(pattern, text)
    if not m:
        raise SystemExit(f"{path}: no line matching {pattern!r}")
    return m[-1]

def timed_run(path, per_step):
    """(s per guided step, total s, peak RSS MB, CPU %) of a run logged by timed()."""
    text = open(path, errors="replace").read().replace("\r", "\n")
    wall = grab(text, r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", path)
    total = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    rss = float(grab(text, r"Maximum resident set size \(kbytes\): (\d+)", path)) / 1024
    cpu = grab(text, r"Percent of CPU this job got: (\d+)%", path)
    return per_step(text, path), total, rss, cpu

def sdcpp_step(text, path):
    """Median of sd.cpp's per-step progress times: its first step also moves the UNet weights into
    the backend (loading that dato-generate does before denoising), the median leaves it out."""
    times = [float(v) if u == "s/it" else 1 / float(v)
             for _, n, v, u in re.findall(r"(\d+)/(\d+) - ([\d.]+)(s/it|it/s)", text) if int(n) == steps]
    if len(times) < steps:
        raise SystemExit(f"{path}: {len(times)} progress lines for {steps} steps")
    return statistics.median(times[-steps:])

def dato_step(text, path):
    return float(grab(text, r"denoised in ([\d.]+) s", path)) / steps

print("| impl | size | steps | s per step (UNet, guided) | total s | peak RSS MB | CPU % of the run |")
print("|---|---|---|---|---|---|---|")
for px in sizes:
    rows = [("sd.cpp, f16 weights (as stored)", f"sdcpp-f16-{px}.log", sdcpp_step),
            ("sd.cpp --type f32", f"sdcpp-f32-{px}.log", sdcpp_step),
            ("dato-generate (f32 weights)", f"dato-{px}.log", dato_step)]
    for name, log, per_step in rows:
        s, total, rss, cpu = timed_run(f"{out}/{log}", per_step)
        print(f"| {name} | {px} px | {steps} | {s:.2f} | {total:.1f} | {rss:.0f} | {cpu} |")
    t = json.load(open(f"{out}/torch-{px}.json"))
    print(f"| PyTorch UNet forward, batch 2 (f32) | {px} px | - | {t['ms_per_forward_median'] / 1000:.2f} | - | "
          f"{t['peak_rss_mb']:.0f} | - |")
PY
