"""CPU speedup of dato schedules applied to a diffusers pipeline, beside DeepCache's own helper.

One run, one process: per repeat, the unpatched pipeline (the baseline) and then each variant
generate the same image from the same latents; a variant's speedup is the median over repeats of
baseline time / variant time of the same repeat (paired ratios: a machine that slows down for a
while slows both). Variants:
  dato deepcache:3     dato_diffusers.apply(pipe, "deepcache:3")
  DeepCache helper     DeepCacheSDHelper(pipe).set_params(cache_interval=3, cache_branch_id=0)
  dato <schedule>      dato_diffusers.apply(pipe, schedule): --schedule, default the dato-paper preset
                       (few full steps, shallow partial steps, pruning 0.3..0.7 on computed steps)
By default the UNet has SD1.5's shapes (tests/fixtures/manifests/sd15_config.json) and seeded random
weights, text encoder and VAE tiny (their time is outside the denoising loop and the same for all);
--model DIR loads a diffusers folder instead (e.g. models/fashion-sd with its scheduler and the
default search run's knee, docs/search_default/knee.json, which is written for it).
Also prints each variant's final-latent distance to the baseline and checks deepcache:3 against
the helper (the same computation, docs/SCHEDULES.md).

  pip install ./python DeepCache==0.1.1
  python3 bench/python_apply.py [--model DIR] [--size 32] [--steps 10] [--repeats 3] [--threads N] [--schedule S]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "python", "tests"))
import dato_diffusers  # noqa: E402
import tiny  # noqa: E402
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402


def build_pipeline():
    config = json.load(open(os.path.join(REPO, "tests", "fixtures", "manifests", "sd15_config.json")))
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval()
    text = CLIPTextModel(CLIPTextConfig(**dict(tiny.TEXT, hidden_size=config["cross_attention_dim"]),
                                        hidden_act="quick_gelu"))
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(tiny.TOKENIZERS, "sd15", "tokenizer"))
    vae = tiny.AutoencoderKL(**tiny.VAE)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDIMScheduler(**tiny.SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a diffusers folder (default: the SD1.5-shaped random UNet built here)")
    ap.add_argument("--size", type=int, default=32, help="image pixels")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--schedule", default="dato-paper", help="the DaTo schedule: a .json file or a preset")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from DeepCache import DeepCacheSDHelper

    if args.model:
        pipe = StableDiffusionPipeline.from_pretrained(args.model, dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
    else:
        pipe = build_pipeline()
    h = args.size // pipe.vae_scale_factor
    latents = torch.randn((1, pipe.unet.config.in_channels, h, h), generator=torch.Generator().manual_seed(1))
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=3, cache_branch_id=0)
    variants = {
        "baseline (unpatched)": (lambda: None, lambda: None),
        "dato deepcache:3": (lambda: dato_diffusers.apply(pipe, "deepcache:3"), lambda: dato_diffusers.remove(pipe)),
        "DeepCache helper, interval 3, branch 0": (helper.enable, helper.disable),
        f"dato {args.schedule}": (lambda: dato_diffusers.apply(pipe, args.schedule), lambda: dato_diffusers.remove(pipe)),
    }

    def generate():
        with torch.no_grad():
            t0 = time.perf_counter()
            out = pipe("a photo of a cat", num_inference_steps=args.steps, guidance_scale=7.5, height=args.size,
                       width=args.size, latents=latents.clone(), output_type="latent").images
            return time.perf_counter() - t0, out

    generate()  # warm-up (allocator, thread pool)
    times = {name: [] for name in variants}
    finals = {}
    for _ in range(args.repeats):
        for name, (enable, disable) in variants.items():
            enable()
            seconds, finals[name] = generate()
            disable()
            times[name].append(seconds)
    base = times["baseline (unpatched)"]
    print(f"python3 bench/python_apply.py {f'--model {args.model} ' if args.model else ''}--size {args.size} "
          f"--steps {args.steps} --repeats {args.repeats} --threads {args.threads} --schedule {args.schedule}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}), float32, UNet {args.model or 'SD1.5 shapes'}, latents {h}^2, "
          f"{type(pipe.scheduler).__name__} {args.steps} steps, CFG 7.5")
    print("| variant | median s per image | median paired speedup (min..max) | latents vs baseline (rel. L2) |")
    print("|---|---|---|---|")
    ref = finals["baseline (unpatched)"]
    for name in variants:
        ratios = [b / t for b, t in zip(base, times[name])]
        rel = float((finals[name] - ref).norm() / ref.norm())
        print(f"| {name} | {statistics.median(times[name]):.2f} | {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}..{max(ratios):.2f}) | {rel:.4f} |")
    gap = float((finals["dato deepcache:3"] - finals["DeepCache helper, interval 3, branch 0"]).abs().max())
    print(f"dato deepcache:3 vs DeepCache helper: final latents max abs diff {gap:.3g}")


if __name__ == "__main__":
    main()
