"""Writes the parameter manifests of the real SD1.5, SD2.1 and SDXL-base UNets.

For each model: <out>/<key>_unet.tsv, one line per tensor
    diffusers_name <TAB> ldm_name <TAB> d0,d1,...
(no `unet.` / `model.diffusion_model.` prefixes), sorted by diffusers name, after a first
comment line `# model=<hub id> params=<N> tensors=<M>`; and <out>/<key>_config.json, the
diffusers unet/config.json it was built from. The models are built on the meta device (no
weights, no hub access); the configs are the published ones, written out below.

Usage: python3 tools/make_manifests.py [--out tests/fixtures/manifests]
"""
import argparse
import json
import os

import torch
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel

import ldm_names

SD_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
SD_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]

# runwayml/stable-diffusion-v1-5 unet/config.json
SD15 = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": SD_DOWN,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": SD_UP,
}

# stabilityai/stable-diffusion-2-1 (768, v-prediction) unet/config.json
SD21 = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": SD_DOWN,
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "sample_size": 96,
    "up_block_types": SD_UP,
    "upcast_attention": True,
    "use_linear_projection": True,
}

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
SDXL = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 2048,
    "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "upcast_attention": None,
    "use_linear_projection": True,
}

# key, hub id, config, published parameter count (SD2.1: derived here, as in kohya-ss/sd-scripts)
MODELS = [
    ("sd15", "runwayml/stable-diffusion-v1-5", SD15, 859_520_964),
    ("sd21", "stabilityai/stable-diffusion-2-1", SD21, 865_910_724),
    ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", SDXL, 2_567_463_684),
]


def unet_init_kwargs(config):
    return {k: v for k, v in config.items() if not k.startswith("_")}


def write_manifest(out_dir, key, hub_id, config, expected_params):
    with init_empty_weights():
        unet = UNet2DConditionModel(**unet_init_kwargs(config))
    state = unet.state_dict()
    n_params = sum(t.numel() for t in state.values())
    assert n_params == expected_params, f"{key}: {n_params} parameters, expected {expected_params}"
    ldm = ldm_names.check_against_diffusers(state, config)  # same tensor objects, LDM names
    table = ldm_names.module_table(config)
    entries = [(d, ldm_names.diffusers_to_ldm(d, table), tuple(t.shape)) for d, t in state.items()]
    assert len(ldm) == len(entries)
    path = os.path.join(out_dir, f"{key}_unet.tsv")
    ldm_names.write_tsv(path, f"# model={hub_id} params={n_params} tensors={len(entries)}", entries)
    with open(os.path.join(out_dir, f"{key}_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{path}: {len(entries)} tensors, {n_params:,} parameters")


def main(out_dir):
    torch.manual_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    for key, hub_id, config, expected in MODELS:
        write_manifest(out_dir, key, hub_id, config, expected)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/manifests")
    main(ap.parse_args().out)
