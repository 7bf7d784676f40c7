#!/usr/bin/env python3
"""Writes an SD1.x diffusers folder (unet/, vae/, text_encoder/) as one LDM (CompVis) single file.

The layout original checkpoints have and stable-diffusion.cpp reads: "model.diffusion_model." +
LDM UNet names (tools/ldm_names.py), "first_stage_model." + LDM VAE names (mid attention as 1x1
convs; make_vae_fixtures.ldm_name), "cond_stage_model.transformer.text_model." + the transformers
CLIP names. Tensors keep their stored dtype (f16 for tools/make_sd15_random_folder.py's folder), so
both files hold the same bits. Before writing, diffusers' own single-file converters must map every
UNet and VAE name back to the folder's name (asserted), so dato and diffusers read the same model.

  python3 tools/diffusers_to_ldm.py --folder /tmp/sd15-random --out /tmp/sd15-random.safetensors
"""
import argparse
import json
import os

from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import load_file, save_file

import ldm_names
from make_vae_fixtures import ldm_name as vae_ldm_name


def read_component(folder, name):
    """(state dict, config dict) of one diffusers component folder."""
    d = os.path.join(folder, name)
    weights = [f for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    if len(weights) != 1:
        raise SystemExit(f"{d}: expected one .safetensors file, found {weights}")
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    return load_file(os.path.join(d, weights[0])), config


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", required=True, help="diffusers SD1.x folder")
    ap.add_argument("--out", required=True, help="LDM .safetensors to write")
    args = ap.parse_args()
    out = {}

    unet, unet_config = read_component(args.folder, "unet")
    for k, v in ldm_names.check_against_diffusers(unet, unet_config).items():
        out["model.diffusion_model." + k] = v
    del unet

    vae, vae_config = read_component(args.folder, "vae")
    n_levels = len(vae_config["block_out_channels"])
    ldm_vae = {}
    for k, v in vae.items():
        lk = "first_stage_model." + vae_ldm_name(k, n_levels)
        ldm_vae[lk] = v[:, :, None, None] if ".mid.attn_1." in lk and v.ndim == 2 else v
    back = convert_ldm_vae_checkpoint(ldm_vae, vae_config)
    assert set(back) == set(vae), f"VAE names: {sorted(set(back) ^ set(vae))[:5]}"
    out.update(ldm_vae)
    del vae

    text, _ = read_component(args.folder, "text_encoder")
    for k, v in text.items():  # transformers 5 saves CLIPTextModel without "text_model."
        out["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v

    save_file({k: v.contiguous() for k, v in out.items()}, args.out)
    dtypes = sorted({str(v.dtype) for v in out.values()})
    print(f"wrote {args.out}: {len(out)} tensors, dtypes {dtypes}")


if __name__ == "__main__":
    main()
