#!/usr/bin/env python3
"""Writes a diffusers folder with the exact Stable Diffusion 1.5 shapes and seeded random weights.

Every component of runwayml/stable-diffusion-v1-5 (UNet 859.5 M, CLIP ViT-L/14 text 123 M,
AutoencoderKL 83.7 M parameters, the CLIP tokenizer, the PNDM scheduler) in the layout a user's
download has, for the full-size load-and-generate benchmark (docs/BENCHMARKS.md). No hub access:
the configs are written out here (the UNet's is tests/fixtures/manifests/sd15_config.json) and the
tokenizer files are copied from --tokenizer. Weights are stored as float16 (as the fp16 variants
users download), about 2.1 GB.

  python3 tools/make_sd15_random_folder.py --out /tmp/sd15-random --tokenizer models/clip_tokenizer
"""
import argparse
import json
import os
import shutil

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VAE_CONFIG = {  # runwayml/stable-diffusion-v1-5 vae/config.json
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

TEXT_CONFIG = dict(  # openai/clip-vit-large-patch14, text part
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1)

SCHEDULER_CONFIG = {  # runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder to create")
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "models", "clip_tokenizer"),
                    help="folder with the CLIP vocab.json and merges.txt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    with open(os.path.join(REPO, "tests", "fixtures", "manifests", "sd15_config.json")) as f:
        unet_config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    unet = UNet2DConditionModel.from_config(unet_config).half()
    unet.save_pretrained(os.path.join(args.out, "unet"), safe_serialization=True)
    del unet
    vae = AutoencoderKL.from_config(VAE_CONFIG).half()
    vae.save_pretrained(os.path.join(args.out, "vae"), safe_serialization=True)
    del vae
    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).half()
    text.save_pretrained(os.path.join(args.out, "text_encoder"), safe_serialization=True)
    del text

    tok = os.path.join(args.out, "tokenizer")
    os.makedirs(tok, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(args.tokenizer, name), os.path.join(tok, name))
    with open(os.path.join(tok, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>"}, f, indent=2)
    with open(os.path.join(tok, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}, f, indent=2)
    os.makedirs(os.path.join(args.out, "scheduler"), exist_ok=True)
    with open(os.path.join(args.out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER_CONFIG, f, indent=2)
    with open(os.path.join(args.out, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
