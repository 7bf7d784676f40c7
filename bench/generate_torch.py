#!/usr/bin/env python3
"""PyTorch side of the generation benchmark: diffusers' StableDiffusionPipeline on a folder, timed.

SDPA attention (AttnProcessor2_0), the folder's own scheduler, guidance 7.5, one image, on CUDA.
After a 2-step warm-up (kernels chosen and loaded) it times a call to latents (text encoding and
denoising) and a full call (+ VAE decode); decode = full - latents. One JSON line:
  {"impl": "diffusers", "dtype", "steps", "size", "load_s", "denoise_s", "decode_s", "total_s"}

  python3 bench/generate_torch.py --folder /tmp/sd15-random --steps 50 --dtype fp16
"""
import argparse
import json
import time

import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", required=True, help="a diffusers Stable Diffusion folder")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--size", type=int, default=512, help="height and width in pixels")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"])
    ap.add_argument("--prompt", default="a photo of an astronaut riding a horse on mars")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("torch sees no CUDA device")
    dtype = {"fp16": torch.float16, "fp32": torch.float32}[args.dtype]

    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.folder, torch_dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False).to("cuda")
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.set_progress_bar_config(disable=True)
    torch.cuda.synchronize()
    load = time.perf_counter() - t0

    def timed(output_type, steps):
        g = torch.Generator("cuda").manual_seed(args.seed)
        t = time.perf_counter()
        pipe(args.prompt, num_inference_steps=steps, guidance_scale=7.5, height=args.size, width=args.size,
             generator=g, output_type=output_type)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    timed("pil", 2)
    denoise = timed("latent", args.steps)
    total = timed("pil", args.steps)
    print(json.dumps({"impl": "diffusers", "dtype": args.dtype, "steps": args.steps, "size": args.size,
                      "load_s": round(load, 2), "denoise_s": round(denoise, 3),
                      "decode_s": round(max(total - denoise, 0.0), 3), "total_s": round(total, 3)}))


if __name__ == "__main__":
    main()
