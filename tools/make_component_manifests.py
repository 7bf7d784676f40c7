"""Writes the parameter manifests of the real SD1.5, SD2.1 and SDXL-base text encoders and VAE decoders.

For each model and component: <out>/<key>_<component>.tsv (text_encoder, text_encoder_2, vae), one line
per tensor
    folder_name <TAB> single_file_name <TAB> folder_shape <TAB> single_file_shape
(shapes as d0,d1,...), after a first comment line
    # model=<hub id> component=<c> class=<class> single_prefix=<p> params=<N> tensors=<M>
where params and tensors count the folder's tensors.
  folder_name: the name in the diffusers folder (text encoders WITH "text_model.", as the hub's
    model.safetensors has it; "text_projection.weight" has none); "-" for a tensor that only the
    single file holds.
  single_file_name: the full name in the original single-file checkpoint, prefix included:
    SD1 "cond_stage_model.transformer." + HF name, SD2 "cond_stage_model.model." + OpenCLIP name,
    SDXL "conditioner.embedders.0.transformer." + HF name (CLIP-L) and "conditioner.embedders.1.model."
    + OpenCLIP name (bigG), VAE "first_stage_model." + LDM name.
  OpenCLIP fuses q, k, v into attn.in_proj_weight / in_proj_bias (3W rows): the q, k and v rows of a
    layer all carry that one name and the fused shape. Its text_projection is stored (W, P), the
    transpose of transformers' text_projection.weight (P, W).
  SD2: the LDM checkpoint holds all 24 resblocks of OpenCLIP ViT-H and its text_projection (1024, 1024);
    diffusers' folder keeps 23 layers (SD2 conditions on the penultimate layer) and no projection
    (CLIPTextModel), and diffusers' converter drops exactly those tensors (SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).
    They appear here as single-file-only rows ("-" folder name and shape; the fused in_proj once), so
    the manifest lists every tensor of both layouts. logit_scale (a scalar the encoder never uses) is not listed.
  VAE: decoder + post_quant_conv only (the engine decodes only); the mid attention's q/k/v/proj_out
    are (C, C) Linears in diffusers and (C, C, 1, 1) convs in LDM.
Next to each manifest, <key>_<component>_config.json (text encoders) or <key>_vae_config.json: the
diffusers config.json it was built from. Models are built on the meta device (no weights, no hub
access); the configs are the published ones, written out below. Every name mapping is checked against
diffusers' own single-file converters (convert_ldm_clip_checkpoint, convert_open_clip_checkpoint,
convert_ldm_vae_checkpoint): they must turn the single-file names and shapes back into the folder's.

Usage: python3 tools/make_component_manifests.py [--out tests/fixtures/manifests]
"""
import argparse
import json
import os
import re

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

# openai/clip-vit-large-patch14 text config, as runwayml/stable-diffusion-v1-5 text_encoder/config.json
# and stable-diffusion-xl-base-1.0 text_encoder/config.json ship it
CLIP_L = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}
# stabilityai/stable-diffusion-2-1 text_encoder/config.json: OpenCLIP ViT-H/14 text, 23 of its 24 layers
OPENCLIP_H = dict(CLIP_L, hidden_act="gelu", hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                  num_hidden_layers=23, projection_dim=512)
# stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json: OpenCLIP ViT-bigG/14 text
OPENCLIP_BIGG = dict(CLIP_L, architectures=["CLIPTextModelWithProjection"], hidden_act="gelu", hidden_size=1280,
                     intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32, projection_dim=1280)


def vae_config(sample_size, scaling_factor):
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": sample_size,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    }


# key, hub id, component, model config, single-file prefix, layout, folder parameters (published where known)
TEXT_ENCODERS = [
    ("sd15", "runwayml/stable-diffusion-v1-5", "text_encoder", CLIP_L, "cond_stage_model.transformer.", "hf",
     123_060_480),
    ("sd21", "stabilityai/stable-diffusion-2-1", "text_encoder", OPENCLIP_H, "cond_stage_model.model.", "openclip",
     340_387_840),
    ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "text_encoder", CLIP_L,
     "conditioner.embedders.0.transformer.", "hf", 123_060_480),
    ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "text_encoder_2", OPENCLIP_BIGG,
     "conditioner.embedders.1.model.", "openclip", 694_659_840),
]
VAES = [
    ("sd15", "runwayml/stable-diffusion-v1-5", vae_config(512, 0.18215)),
    ("sd21", "stabilityai/stable-diffusion-2-1", vae_config(768, 0.18215)),
    ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", vae_config(1024, 0.13025)),
]
VAE_PREFIX = "first_stage_model."
VAE_DECODER_PARAMS = 49_490_199  # decoder + post_quant_conv of every SD-family VAE


def build_text_encoder(config, layers=None, projection=None):
    cfg = dict(config)
    if layers is not None:
        cfg["num_hidden_layers"] = layers
    if projection is not None:
        cfg["projection_dim"] = projection
    cls = CLIPTextModelWithProjection if cfg["architectures"] == ["CLIPTextModelWithProjection"] else CLIPTextModel
    if projection is not None:
        cls = CLIPTextModelWithProjection
    kwargs = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type")}
    with init_empty_weights():
        model = cls(CLIPTextConfig(**kwargs))
    # transformers 5 saves CLIPTextModel without "text_model."; diffusers folders on the hub have it
    state = {}
    for name, t in model.state_dict().items():
        if not name.startswith("text_model.") and name != "text_projection.weight":
            name = "text_model." + name
        state[name] = tuple(t.shape)
    return state


# transformers -> OpenCLIP, inside a layer (after text_model.encoder.layers.N. / transformer.resblocks.N.)
OPENCLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
OPENCLIP_TOP = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "text_projection.weight": "text_projection",
}


def openclip_name(hf, shape):
    """(OpenCLIP name, its shape in the OpenCLIP file) of a transformers tensor."""
    if hf in OPENCLIP_TOP:
        oc = OPENCLIP_TOP[hf]
        return oc, (shape[1], shape[0]) if oc == "text_projection" else shape
    m = re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", hf)
    assert m, hf
    layer, module, kind = m.groups()
    base = f"transformer.resblocks.{layer}."
    if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
        return base + f"attn.in_proj_{kind}", (3 * shape[0],) + tuple(shape[1:])
    return base + f"{OPENCLIP_LAYER[module]}.{kind}", shape


def meta(shape):
    return torch.empty(shape, device="meta")


def text_encoder_rows(config, prefix, layout):
    folder = build_text_encoder(config)
    if layout == "hf":
        rows = [(n, prefix + n, s, s) for n, s in folder.items()]
        single = {r[1]: meta(r[3]) for r in rows}
        back = sfu.convert_ldm_clip_checkpoint(single, remove_prefix=prefix)
        check_round_trip(back, folder, "convert_ldm_clip_checkpoint")
        return folder, rows
    # The whole OpenCLIP text tower: for SD2 one more layer and the projection than the folder keeps.
    full = folder
    if config["num_hidden_layers"] == 23:
        full = build_text_encoder(config, layers=24, projection=config["hidden_size"])
    rows = []
    for n, s in full.items():
        oc, oc_shape = openclip_name(n, s)
        in_folder = n in folder
        if not in_folder and any(r[1] == prefix + oc for r in rows):
            continue  # a fused in_proj that only the single file holds: one row, not one per q, k, v
        rows.append((n if in_folder else "-", prefix + oc, s if in_folder else None, oc_shape))
    single = {r[1]: meta(r[3]) for r in rows}
    back = sfu.convert_open_clip_checkpoint(None, single, prefix=prefix)
    check_round_trip(back, folder, "convert_open_clip_checkpoint")
    return folder, rows


def check_round_trip(back, folder, what):
    got = {k: tuple(v.shape) for k, v in back.items()}
    assert got == folder, f"{what}: missing {sorted(set(folder) - set(got))[:5]}, extra {sorted(set(got) - set(folder))[:5]}, " \
                          f"misshaped {[k for k in folder if k in got and got[k] != folder[k]][:5]}"


def ldm_vae_name(d, n_levels):
    """The LDM name (no prefix) of a diffusers decoder / post_quant_conv tensor."""
    n = d.replace("decoder.conv_norm_out.", "decoder.norm_out.")
    n = re.sub(r"decoder\.mid_block\.resnets\.(\d+)\.", lambda m: f"decoder.mid.block_{int(m.group(1)) + 1}.", n)
    n = n.replace("decoder.mid_block.attentions.0.", "decoder.mid.attn_1.")
    for a, b in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")):
        n = n.replace("attn_1." + a, "attn_1." + b)
    n = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m.group(1))}.block.{m.group(2)}.", n)
    n = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m.group(1))}.upsample.", n)
    return n.replace("conv_shortcut.", "nin_shortcut.")


def vae_rows(config):
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    with init_empty_weights():
        vae = AutoencoderKL(**kwargs)
    folder = {n: tuple(t.shape) for n, t in vae.state_dict().items()
              if n.startswith("decoder.") or n.startswith("post_quant_conv.")}
    n_levels = len(config["block_out_channels"])
    rows = []
    for d, s in folder.items():
        lname = ldm_vae_name(d, n_levels)
        ls = s + (1, 1) if ".attn_1." in lname and len(s) == 2 else s  # LDM: 1x1 convs
        rows.append((d, VAE_PREFIX + lname, s, ls))
    single = {r[1]: meta(r[3]) for r in rows}
    back = sfu.convert_ldm_vae_checkpoint(single, config)
    check_round_trip(back, folder, "convert_ldm_vae_checkpoint")
    return folder, rows


def shape_text(s):
    return "-" if s is None else ",".join(str(d) for d in s)


def write(out_dir, key, hub_id, component, cls, prefix, folder, rows, config, config_name, expected):
    n_params = sum(torch.Size(s).numel() for s in folder.values())
    assert n_params == expected, f"{key} {component}: {n_params} parameters, expected {expected}"
    # folder rows sorted by folder name, then single-file-only rows by their name
    rows = sorted(rows, key=lambda r: (r[0] == "-", r[0] if r[0] != "-" else r[1]))
    path = os.path.join(out_dir, f"{key}_{component}.tsv")
    with open(path, "w") as f:
        f.write(f"# model={hub_id} component={component} class={cls} single_prefix={prefix} "
                f"params={n_params} tensors={len(folder)}\n")
        for r in rows:
            f.write(f"{r[0]}\t{r[1]}\t{shape_text(r[2])}\t{shape_text(r[3])}\n")
    with open(os.path.join(out_dir, config_name), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    n_single = len({r[1] for r in rows})
    print(f"{path}: {len(folder)} folder tensors ({n_params:,} parameters), {n_single} single-file tensors")


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for key, hub_id, component, config, prefix, layout, expected in TEXT_ENCODERS:
        folder, rows = text_encoder_rows(config, prefix, layout)
        write(out_dir, key, hub_id, component, config["architectures"][0], prefix, folder, rows, config,
              f"{key}_{component}_config.json", expected)
    for key, hub_id, config in VAES:
        folder, rows = vae_rows(config)
        write(out_dir, key, hub_id, "vae", "AutoencoderKL", VAE_PREFIX, folder, rows, config, f"{key}_vae_config.json",
              VAE_DECODER_PARAMS)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/manifests")
    main(ap.parse_args().out)
