#!/usr/bin/env python3
"""The GPU kit's summary: reads the raw rows of `scripts/gpu-kit run` and writes OUT/summary.md.

  python3 bench/gpu_summary.py RAW OUT MANIFEST

RAW holds, per row NAME: NAME.out (the program's stdout: JSON lines), NAME.log (stderr), NAME.err
(why it failed or was skipped), NAME.wall (seconds). OUT holds probe.txt and tests.log. Writes
OUT/summary.md and OUT/rows.json (every row's JSON lines and status), and prints the summary.
Ratios are dato time / PyTorch time: below 1x dato is faster.
"""
import json
import os
import re
import sys

raw, out, manifest = sys.argv[1], sys.argv[2], sys.argv[3]


def read(path, default=""):
    return open(path, errors="replace").read() if os.path.exists(path) else default


def rows(name):  # the JSON lines a row printed ([] when it printed none)
    return [json.loads(l) for l in read(os.path.join(raw, name + ".out")).splitlines() if l.strip().startswith("{")]


def status(name):  # why a row has no numbers
    e = read(os.path.join(raw, name + ".err")).strip().replace("|", "/")
    return ("FAILED (" + e[:160] + ")" if not e.startswith(("skipped", "not run")) else e) if e else "no output"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


probe = read(os.path.join(out, "probe.txt"))
gpu = next((l.split(":", 1)[1].strip() for l in probe.splitlines() if l.startswith("nvidia-smi:")), "unknown")
kit = read(manifest).splitlines()
md = ["# dato GPU kit: summary", "",
      f"- card (name, driver, memory, used, compute capability): {gpu}",
      f"- kit {kit[1] if len(kit) > 1 else '?'}; {kit[2] if len(kit) > 2 else ''}",
      f"- {next((l for l in probe.splitlines() if l.startswith('torch')), 'torch: absent')}", ""]

md += ["## gpu tests", "", "| test | result | time / note |", "|---|---|---|"]
for line in read(os.path.join(out, "tests.log")).splitlines():
    m = re.match(r"^(PASSED|FAILED|SKIPPED|NOT RUN) (test_\w+):? ?(.*)$", line)
    if m:
        md.append(f"| {m.group(2)} | {m.group(1)} | {m.group(3).replace('|', '/')} |")
md += ["", "A test prints its max errors in tests.log; the last one is quoted here.", ""]

md += ["## UNet step (SD1.5 shapes, 64x64 latents, 77 context tokens)", "",
       "| batch | dato f32 ms | dato f16 ms | PyTorch fp16 SDPA ms | dato f16 / PyTorch fp16 | dato workspace MB |",
       "|---|---|---|---|---|---|"]
torch16 = {r.get("batch"): r for r in rows("unet-torch-fp16")}
for b in (2, 8):
    d32, d16 = (rows(f"unet-dato-f32-b{b}") or [None])[0], (rows(f"unet-dato-f16-b{b}") or [None])[0]
    t = torch16.get(b)
    ms = lambda r: r["ms_per_forward_median"] if r else None
    md.append(f"| {b} | {ms(d32) or status(f'unet-dato-f32-b{b}')} | {ms(d16) or status(f'unet-dato-f16-b{b}')} | "
              f"{ms(t) or status('unet-torch-fp16')} | {ratio(ms(d16), ms(t))} | {d32['workspace_mb'] if d32 else '-'} |")

md += ["", "## 512x512 generation (50 steps, the folder's PNDM, guidance 7.5, one image, SD1.5-shaped random weights)", "",
       "| run | load s | denoise s | decode s | wall s | denoise / dato baseline | denoise / diffusers fp16 |",
       "|---|---|---|---|---|---|---|"]
torch_gen = (rows("gen-torch-fp16") or [None])[0]
base = None
for sched in ("baseline", "dato-paper"):
    name = f"gen-{sched}"
    log = read(os.path.join(raw, name + ".log")).replace("\r", "\n")
    load = re.search(r"loaded .* in ([0-9.]+) s", log)
    den = re.search(r"denoised in ([0-9.]+) s, decoded in ([0-9.]+) s", log)
    if den and not os.path.exists(os.path.join(raw, name + ".err")):
        d = float(den.group(1))
        base = d if sched == "baseline" else base
        md.append(f"| dato-generate --schedule {sched} (f32) | {load.group(1) if load else '-'} | {d:.2f} | {den.group(2)} | "
                  f"{read(os.path.join(raw, name + '.wall')).strip()} | {ratio(d, base)} | "
                  f"{ratio(d, torch_gen and torch_gen['denoise_s'])} |")
    else:
        md.append(f"| dato-generate --schedule {sched} | {status(name)} | | | | | |")
if torch_gen:
    md.append(f"| diffusers StableDiffusionPipeline fp16 SDPA | {torch_gen['load_s']} | {torch_gen['denoise_s']} | "
              f"{torch_gen['decode_s']} | - | {ratio(torch_gen['denoise_s'], base)} | 1.00x |")
else:
    md.append(f"| diffusers StableDiffusionPipeline fp16 SDPA | {status('gen-torch-fp16')} | | | | | |")
md += ["", "dato's denoise time starts after text encoding; diffusers' includes it (a call with "
       "output_type='latent'). Images: gen-baseline.png, gen-dato-paper.png.", ""]

md += ["## Single ops (SD1.5 shapes)", "", "| op | case | dtype | dato mode | dato ms | PyTorch ms | dato / PyTorch |",
       "|---|---|---|---|---|---|---|"]
torch_ops = {(r["op"], r["case"], r["dtype"]): r for r in rows("ops-torch")}
dato_ops = rows("ops-dato")
for r in dato_ops:
    t = torch_ops.get((r["op"], r["case"], r["dtype"]))
    torch_ms = "%.3f" % t["ms"] if t else status("ops-torch")
    md.append(f"| {r['op']} | {r['case']} | {r['dtype']} | {r['mode']} | {r['ms']:.3f} | {torch_ms} | "
              f"{ratio(r['ms'], t and t['ms'])} |")
if not dato_ops:
    md.append(f"| all | | | | {status('ops-dato')} | {status('ops-torch')} | |")

md += ["", "## Inception-v3 pool3 features (299x299, batch 64)", "", "| impl | images/s | ms per batch |", "|---|---|---|"]
for name, label in (("inception-dato", "dato f32"), ("inception-torch-fp32", "pytorch-fid fp32")):
    r = (rows(name) or [None])[0]
    md.append(f"| {label} | {r['images_per_s'] if r else status(name)} | {r['ms_per_batch'] if r else '-'} |")

notes = read(os.path.join(raw, "notes.txt")).strip()
if notes:
    md += ["", "## Notes", ""] + [f"- {l}" for l in notes.splitlines()]
md.append("")

every = sorted({f.rsplit(".", 1)[0] for f in os.listdir(raw) if f.endswith((".out", ".err"))})
json.dump({n: {"rows": rows(n), "status": read(os.path.join(raw, n + ".err")).strip() or "ok",
               "wall_s": read(os.path.join(raw, n + ".wall")).strip()} for n in every},
          open(os.path.join(out, "rows.json"), "w"), indent=1)
open(os.path.join(out, "summary.md"), "w").write("\n".join(md))
print("\n".join(md))
