"""Reference images of the embedded default model (models/fashion-sd) from diffusers' own
StableDiffusionPipeline, for the C parity test tests/parity/test_default_model.c: the ten evaluation
prompts, one image each, at the model's defaults (dato.json: PLMS, 25 steps, its guidance), from
initial latents drawn here and stored, so the C side starts from the same noise.

Writes tests/fixtures/default_model/reference.safetensors:
  latents  (10, 4, 14, 14) f32  the initial noise (unscaled: PLMS's init_noise_sigma is 1)
  images   (10, 28, 28)    u8   diffusers' output, (x / 2 + 0.5).clamp(0, 1) * 255 rounded
  images_f (10, 1, 28, 28) f32  the VAE output before quantization
  token_ids (P, 16)        i32  CLIPTokenizer's ids of every training prompt (datasets/fashion-mnist/prompts.tsv)
                                and "" (the last row)
and reference.json (prompts, the tokenized prompts, steps, guidance, sampler, versions).

Usage: python3 tools/make_default_model_fixtures.py [--model models/fashion-sd]
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import StableDiffusionPipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fashion-sd"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "default_model"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    defaults = json.load(open(os.path.join(args.model, "dato.json")))
    prompts = [l.strip() for l in open(os.path.join(args.model, defaults["eval_prompts"])) if l.strip()]
    pipe = StableDiffusionPipeline.from_pretrained(args.model, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.check_inputs = lambda *a, **k: None  # 28 is not a multiple of 8; the VAE factor is 2
    latents = torch.randn(len(prompts), 4, 14, 14, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        out = pipe(prompts, num_inference_steps=defaults["steps"], guidance_scale=defaults["guidance"],
                   latents=latents.clone(), output_type="pt", height=28, width=28).images  # (10, 1, 28, 28) in [0, 1]
    images_f = out * 2 - 1
    images = (out[:, 0] * 255).round().clamp(0, 255).to(torch.uint8)
    tsv = os.path.join(os.path.dirname(os.path.join(args.model, defaults["eval_prompts"])), "prompts.tsv")
    train_prompts = [l.rstrip("\n").split("\t", 1)[1] for l in open(tsv) if l.strip()] + [""]
    ids = pipe.tokenizer(train_prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(torch.int32)
    os.makedirs(args.out, exist_ok=True)
    save_file({"latents": latents.contiguous(), "images": images.contiguous(), "images_f": images_f.contiguous(),
               "token_ids": ids.contiguous()},
              os.path.join(args.out, "reference.safetensors"))
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"prompts": prompts, "tokenized_prompts": train_prompts, "steps": defaults["steps"], "guidance": defaults["guidance"], "sampler": "pndm",
                   "torch": torch.__version__, "diffusers": diffusers.__version__}, f, indent=2)
    print("wrote", args.out, "pixel mean", float(images.float().mean()))


if __name__ == "__main__":
    main()
