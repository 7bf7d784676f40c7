#!/usr/bin/env bash
# The GPU benchmark in one call: dato's CUDA backend (f32, and f16 weights) next to PyTorch on the same GPU.
#   bash bench/gpu.sh [build-dir] [results.md]        (defaults build-gpu, results/bench/gpu.md)
# Rows: the SD1.5 UNet step at 64x64 latents, batch 2, 8, 32 (dato f32 and --dtype f16; PyTorch fp16
# and fp32, SDPA);
# the SD VAE decode 64x64 -> 512x512; Inception-v3 pool3 features per second at 299x299; single
# ops at SD shapes (attention f32/f16/bf16 against SDPA, conv2d im2col/cuDNN against F.conv2d); a full
# 512x512 generation (50 PNDM steps, guidance 7.5, one image) with dato-generate for the
# schedules baseline, deepcache:5, tome:0.5, dato-paper (and baseline with --dtype f16), next to
# diffusers' StableDiffusionPipeline,
# both on the SD1.5-shaped random-weight folder (tools/make_sd15_random_folder.py, made if missing).
# Needs nvcc and a GPU. No network: PyTorch rows need torch (+ diffusers, transformers for the
# UNet, VAE and pipeline; pytorch-fid for Inception); a missing package skips its rows, saying so.
# A failing row is recorded in the table and the run goes on. Raw JSON and logs: <results>-raw/.
# Environment: SD15_FOLDER (default /tmp/sd15-random), STEPS (default 50).
set -uo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-gpu}"
results="${2:-results/bench/gpu.md}"
raw="${results%.md}-raw"
folder="${SD15_FOLDER:-/tmp/sd15-random}"
steps="${STEPS:-50}"
sd15=tests/fixtures/manifests/sd15_config.json
prompt="a photo of an astronaut riding a horse on mars"
mkdir -p "$(dirname "$results")" "$raw"
rm -f "$raw"/*.json "$raw"/*.jsonl "$raw"/*.out "$raw"/*.err "$raw"/*.wall "$raw"/notes.txt
t_start=$(date +%s)

note() { echo "$*" >> "$raw/notes.txt"; echo "gpu.sh: $*" >&2; }
section() { echo "gpu.sh: [$(( $(date +%s) - t_start )) s] $*" >&2; }
have_py() { python3 -c "import $1" 2>/dev/null; }
# run NAME CMD...: stdout to $raw/NAME.json (.jsonl for PyTorch, .out for dato-generate), stderr to
# $raw/NAME.log; a failure writes $raw/NAME.err (exit code + last log line), shown in the table.
run() {
  local name=$1 ext=json; shift
  case $name in *-torch-*) ext=jsonl ;; gen-*) ext=out ;; esac
  timeout 300 "$@" > "$raw/$name.$ext" 2> "$raw/$name.log"
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "exit $rc$([ "$rc" = 124 ] && echo ', timed out'): $(tr '\r' '\n' < "$raw/$name.log" | grep -v '^\s*$' | tail -1)" \
      > "$raw/$name.err"
    note "$name failed: $(cat "$raw/$name.err")"
  fi
}

# ---- build --------------------------------------------------------------------------------------
section "building $build with -DDATO_CUDA=ON"
command -v nvcc >/dev/null || { echo "gpu.sh: nvcc not found: the CUDA backend cannot be built" >&2; exit 1; }
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
if ! { cmake -S . -B "$build" -DDATO_CUDA=ON -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$build" -j "$(nproc)" --target dato-generate bench_unet bench_vae bench_inception bench_gpu_ops; } \
       > "$raw/build.log" 2>&1; then
  tail -30 "$raw/build.log" >&2
  echo "gpu.sh: the build failed (log: $raw/build.log)" >&2
  exit 1
fi
torch_gpu=0
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then torch_gpu=1
else note "torch missing or sees no GPU: PyTorch rows skipped"; fi
torch_ok() { [ "$torch_gpu" = 1 ] && { have_py "$1" || { note "python module $1 missing: its PyTorch rows skipped"; false; }; }; }

# ---- UNet step ----------------------------------------------------------------------------------
section "UNet step, SD1.5 shapes, 64x64 latents"
for b in 2 8 32; do
  iters=$(( b == 32 ? 3 : b == 8 ? 5 : 10 ))
  run "unet-dato-b$b" "$build/bench_unet" --backend cuda --config "$sd15" --latent 64 --batch "$b" --iters "$iters" --warmup 2
  run "unet-dato-f16-b$b" "$build/bench_unet" --backend cuda --dtype f16 --config "$sd15" --latent 64 --batch "$b" \
    --iters "$iters" --warmup 2
done
if torch_ok diffusers; then
  run unet-torch-fp16 python3 bench/unet_torch.py --config sd15 --latent 64 --batch 2,8,32 --device cuda --dtype fp16 \
    --iters 10 --warmup 3
  run unet-torch-fp32 python3 bench/unet_torch.py --config sd15 --latent 64 --batch 2,8,32 --device cuda --dtype fp32 \
    --iters 5 --warmup 2
fi

# ---- VAE decode ---------------------------------------------------------------------------------
section "VAE decode, 64x64 latents -> 512x512"
run vae-dato "$build/bench_vae" --backend cuda --latent 64 --batch 1 --iters 5
# argv[1] = dtype: diffusers' AutoencoderKL in bench_vae's default (SD) config, seeded random weights
read -r -d '' vae_torch <<'PY'
import json, statistics, sys, time
import torch
from diffusers import AutoencoderKL
dt = {"fp16": torch.float16, "fp32": torch.float32}[sys.argv[1]]
torch.manual_seed(0)
with torch.device("cuda"):
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        norm_num_groups=32, sample_size=512).eval()
vae = vae.to(dt)
z = torch.randn(1, 4, 64, 64, device="cuda", dtype=dt) / 0.18215
times = []
with torch.inference_mode():
    for i in range(7):
        t0 = time.perf_counter()
        vae.decode(z).sample
        torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
print(json.dumps({"impl": "pytorch", "dtype": sys.argv[1], "s_per_decode_median": round(statistics.median(times), 4),
                  "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 1048576.0, 1)}))
PY
if torch_ok diffusers; then
  run vae-torch-fp16 python3 -c "$vae_torch" fp16
  run vae-torch-fp32 python3 -c "$vae_torch" fp32
fi

# ---- Inception features -------------------------------------------------------------------------
section "Inception-v3 pool3 features, 299x299, batch 64"
run inception-dato "$build/bench_inception" --backend cuda --batch 64 --iters 5
if torch_ok pytorch_fid; then
  run inception-torch-fp32 python3 bench/inception_torch.py --device cuda --dtype fp32 --batch 64 --iters 5
  run inception-torch-fp16 python3 bench/inception_torch.py --device cuda --dtype fp16 --batch 64 --iters 5
fi

# ---- GPU ops ------------------------------------------------------------------------------------
section "GPU ops: attention and conv2d at SD1.5 UNet / VAE shapes"
run ops-dato "$build/bench_gpu_ops" --batch 2 --iters 20 --warmup 3
if torch_ok torch; then
  run ops-torch-all python3 bench/gpu_ops_torch.py --device cuda --batch 2 --iters 20 --warmup 3
fi

# ---- 512x512 generation -------------------------------------------------------------------------
section "512x512 generation, $steps steps, on $folder"
if [ ! -f "$folder/model_index.json" ]; then
  if [ "$torch_gpu" = 1 ] && have_py diffusers && have_py transformers; then
    python3 tools/make_sd15_random_folder.py --out "$folder" > "$raw/make_folder.log" 2>&1 ||
      note "tools/make_sd15_random_folder.py failed: $(tail -1 "$raw/make_folder.log")"
  else
    note "no $folder and no torch + diffusers + transformers to make it: generation rows skipped"
  fi
fi
# gen TAG SCHEDULE [dato-generate options...]: one timed 512x512 generation, its wall time in gen-TAG.wall
gen() {
  local tag=$1 sched=$2; shift 2
  local t0; t0=$(date +%s.%N)
  run "gen-$tag" "$build/dato-generate" --backend cuda --model "$folder" --prompt "$prompt" --steps "$steps" \
    --size 512 --seed 1 --schedule "$sched" --out "$raw/gen-$tag.png" "$@"
  python3 -c "import json,sys; print(json.dumps({'wall_s': round(float(sys.argv[2]) - float(sys.argv[1]), 2)}))" \
    "$t0" "$(date +%s.%N)" > "$raw/gen-$tag.wall"
}
if [ -f "$folder/model_index.json" ]; then
  for sched in baseline deepcache:5 tome:0.5 dato-paper; do gen "${sched//[:.]/-}" "$sched"; done
  gen baseline-f16 baseline --dtype f16          # f16 Linear/Conv weights and attention (f32 accumulation)
  gen dato-paper-f16 dato-paper --dtype f16
  gen baseline-host baseline --loop host         # the sampler on the host, the UNet launched op by op
  gen baseline-im2col baseline --conv im2col     # convolutions without cuDNN
  # argv: dtype folder steps prompt. diffusers' StableDiffusionPipeline on the folder with SDPA:
  # a call to latents (text + denoise), then a full call (+ decode).
  read -r -d '' pipe_torch <<'PY'
import json, sys, time
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0
dtype, folder, steps, prompt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype={"fp16": torch.float16, "fp32": torch.float32}[dtype],
                                               safety_checker=None, requires_safety_checker=False).to("cuda")
pipe.unet.set_attn_processor(AttnProcessor2_0())
pipe.set_progress_bar_config(disable=True)
torch.cuda.synchronize()
load = time.perf_counter() - t0
def timed(output_type, n):
    g = torch.Generator("cuda").manual_seed(1)
    t = time.perf_counter()
    pipe(prompt, num_inference_steps=n, guidance_scale=7.5, height=512, width=512, generator=g, output_type=output_type)
    torch.cuda.synchronize()
    return time.perf_counter() - t
timed("pil", 2)  # warm-up: kernels chosen and loaded
denoise = timed("latent", steps)
total = timed("pil", steps)
print(json.dumps({"impl": "diffusers", "dtype": dtype, "load_s": round(load, 2), "denoise_s": round(denoise, 2),
                  "decode_s": round(max(total - denoise, 0.0), 2), "total_s": round(total, 2)}))
PY
  if torch_ok diffusers && torch_ok transformers; then
    run gen-torch-fp16 python3 -c "$pipe_torch" fp16 "$folder" "$steps" "$prompt"
    run gen-torch-fp32 python3 -c "$pipe_torch" fp32 "$folder" "$steps" "$prompt"
  fi
fi

# ---- the table ----------------------------------------------------------------------------------
section "writing $results"
python3 - "$raw" "$results" "$gpu" "$steps" <<'PY'
import glob, json, os, re, subprocess, sys
raw, out, gpu, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def lines(name):  # JSON lines of a row's output, [] when absent
    for ext in ("json", "jsonl"):
        p = os.path.join(raw, f"{name}.{ext}")
        if os.path.exists(p):
            return [json.loads(l) for l in open(p) if l.strip().startswith("{")]
    return []

def err(name):  # why a row is missing: its .err, or "skipped"
    p = os.path.join(raw, f"{name}.err")
    return "FAILED (" + open(p).read().strip().replace("|", "/")[:160] + ")" if os.path.exists(p) else "skipped"

def by_batch(rows, b):
    return next((r for r in rows if r.get("batch") == b), None)

try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:  # no git on the machine
    commit = ""
md = [f"# dato on the GPU: {gpu or 'unknown GPU'}", "",
      f"Commit {commit or '?'}; dato's CUDA backend in f32 (weights and activations), and with --dtype f16 "
      f"(f16 Linear/Conv weights, f16 GEMM inputs, f32 accumulation and activations); PyTorch "
      f"{next((r['torch'] for r in lines('unet-torch-fp16') + lines('unet-torch-fp32')), 'absent')}.", ""]

md += ["## UNet step (SD1.5 shapes, 64x64 latents, context 77 tokens)", "",
       "| batch | dato f32 ms | dato f16 ms | PyTorch fp16 SDPA ms | PyTorch fp32 SDPA ms | dato f16 / fp16 | dato / fp32 | dato workspace MB | PyTorch fp16 peak MB |",
       "|---|---|---|---|---|---|---|---|---|"]
t16, t32 = lines("unet-torch-fp16"), lines("unet-torch-fp32")
for b in (2, 8, 32):
    d = (lines(f"unet-dato-b{b}") or [None])[0]
    d16 = (lines(f"unet-dato-f16-b{b}") or [None])[0]
    h, f = by_batch(t16, b), by_batch(t32, b)
    cell = lambda r, k="ms_per_forward_median": f"{r[k]:.1f}" if r else None
    ratio = lambda mine, r: f"{mine['ms_per_forward_median'] / r['ms_per_forward_median']:.2f}x" if mine and r else "-"
    md.append(f"| {b} | {cell(d) or err(f'unet-dato-b{b}')} | {cell(d16) or err(f'unet-dato-f16-b{b}')} | "
              f"{cell(h) or err('unet-torch-fp16')} | "
              f"{cell(f) or err('unet-torch-fp32')} | {ratio(d16, h)} | {ratio(d, f)} | "
              f"{d['workspace_mb'] if d else '-'} | {h.get('peak_gpu_mb', '-') if h else '-'} |")
md += ["", "dato / PyTorch is the time ratio (dato f16 against PyTorch fp16, dato f32 against fp32): below 1x "
       "dato is faster.", ""]

md += ["## VAE decode (SD decoder, 64x64 latents -> 512x512, batch 1)", "", "| impl | s per decode |", "|---|---|"]
for name, label in (("vae-dato", "dato f32"), ("vae-torch-fp16", "PyTorch fp16"), ("vae-torch-fp32", "PyTorch fp32")):
    r = (lines(name) or [None])[0]
    md.append(f"| {label} | {r['s_per_decode_median'] if r else err(name)} |")

md += ["", "## Inception-v3 pool3 features (299x299, batch 64)", "", "| impl | images/s | ms per batch |", "|---|---|---|"]
for name, label in (("inception-dato", "dato f32"), ("inception-torch-fp32", "pytorch-fid fp32"),
                    ("inception-torch-fp16", "pytorch-fid fp16")):
    r = (lines(name) or [None])[0]
    md.append(f"| {label} | {r['images_per_s'] if r else err(name)} | {r['ms_per_batch'] if r else '-'} |")

md += ["", "## Single ops (SD1.5 shapes; bench/bench_gpu_ops.c, bench/gpu_ops_torch.py)", "",
       "| op | case | dtype | dato mode | dato ms | dato TFLOP/s | PyTorch ms | PyTorch TFLOP/s | dato / PyTorch |",
       "|---|---|---|---|---|---|---|---|---|"]
ops_d, ops_t = lines("ops-dato"), lines("ops-torch-all")
ops_torch = {(r["op"], r["case"], r["dtype"]): r for r in ops_t}
ops_keys = [(r["op"], r["case"], r["dtype"], r["mode"]) for r in ops_d]
ops_keys += [(r["op"], r["case"], r["dtype"], "-") for r in ops_t
             if (r["op"], r["case"], r["dtype"]) not in {k[:3] for k in ops_keys}]
ops_dato = {(r["op"], r["case"], r["dtype"], r["mode"]): r for r in ops_d}
ms_cell = lambda r, name: f"{r['ms']:.3f}" if r else err(name)
for k in ops_keys:
    d, t = ops_dato.get(k), ops_torch.get(k[:3])
    ratio = f"{d['ms'] / t['ms']:.2f}x" if d and t else "-"
    md.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {ms_cell(d, 'ops-dato')} | {d['tflops'] if d else '-'} | "
              f"{ms_cell(t, 'ops-torch-all')} | {t['tflops'] if t else '-'} | {ratio} |")
if not ops_keys:
    md.append(f"| all | | | | {err('ops-dato')} | | {err('ops-torch-all')} | | |")
md += ["", "Median of 20 calls after 3, each between two synchronizes; attention at batch 2, 8 heads; conv2d "
       "with bias, UNet rows at batch 2, VAE rows at batch 1. PyTorch: SDPA on (B, H, N, D) tensors in the "
       "dtype, and F.conv2d on cuDNN (benchmark mode, no TF32), set against both of dato's conv modes. dato's "
       "attention rounds f32 q, k, v to the dtype inside the kernel; its f16 conv2d rounds the f32 activations "
       "to f16 for f16 weights, accumulates in f32 and returns f32 (cudnn through an f16 output); PyTorch's "
       "f16 rows are f16 throughout. A missing dato cudnn row: cuDNN refused "
       "the shape or the build has no cuDNN (the reason is in ops-dato.log)."]

md += ["", f"## 512x512 generation ({steps} PNDM steps, guidance 7.5, one image, SD1.5-shaped random fp16 folder)", "",
       "| run | load s | denoise s | decode s | wall s | speedup vs dato baseline (denoise) |", "|---|---|---|---|---|---|"]
base = None
for sched, tag in (("baseline", "baseline"), ("deepcache:5", "deepcache-5"), ("tome:0.5", "tome-0-5"),
                   ("dato-paper", "dato-paper"), ("baseline --dtype f16", "baseline-f16"),
                   ("dato-paper --dtype f16", "dato-paper-f16"), ("baseline --loop host", "baseline-host"),
                   ("baseline --conv im2col", "baseline-im2col")):
    log = os.path.join(raw, f"gen-{tag}.log")
    text = open(log).read().replace("\r", "\n") if os.path.exists(log) else ""
    load = re.search(r"loaded .* in ([0-9.]+) s", text)
    den = re.search(r"denoised in ([0-9.]+) s, decoded in ([0-9.]+) s", text)
    wall_p = os.path.join(raw, f"gen-{tag}.wall")
    wall = json.load(open(wall_p))["wall_s"] if os.path.exists(wall_p) else "-"
    if den and not os.path.exists(os.path.join(raw, f"gen-{tag}.err")):
        d = float(den.group(1))
        base = d if sched == "baseline" else base
        speedup = f"{base / d:.2f}x" if base else "-"
        md.append(f"| dato-generate --schedule {sched} | {load.group(1) if load else '-'} | {d:.2f} | {den.group(2)} | "
                  f"{wall} | {speedup} |")
    else:
        md.append(f"| dato-generate --schedule {sched} | {err(f'gen-{tag}')} | | | | |")
for dt in ("fp16", "fp32"):
    r = (lines(f"gen-torch-{dt}") or [None])[0]
    if r:
        speedup = f"{base / r['denoise_s']:.2f}x" if base else "-"
        md.append(f"| diffusers StableDiffusionPipeline {dt} (SDPA) | {r['load_s']} | {r['denoise_s']} | {r['decode_s']} "
                  f"| {r['total_s']} (after load) | {speedup} |")
    else:
        md.append(f"| diffusers StableDiffusionPipeline {dt} (SDPA) | {err(f'gen-torch-{dt}')} | | | | |")
md += ["", "dato's denoise time starts after the text encoding; its wall time is the whole process (load, "
       "encode, denoise, decode, PNG). diffusers' denoise time is a pipeline call with output_type='latent' "
       "(text encoding included), its decode the rest of a full call.", ""]
notes = os.path.join(raw, "notes.txt")
if os.path.exists(notes):
    md += ["## Notes", ""] + [f"- {l.strip()}" for l in open(notes) if l.strip()] + [""]
open(out, "w").write("\n".join(md))
print("\n".join(md))
PY
section "done: $results"
