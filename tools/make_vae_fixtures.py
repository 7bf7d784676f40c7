"""Reference outputs for the VAE decoder parity test (run once by hand; CI never runs it).

Writes, under --out (default tests/fixtures/vae), one folder per tiny AutoencoderKL:
  <name>/vae/config.json + diffusion_pytorch_model.safetensors   the diffusers layout (F32)
  <name>/ldm.safetensors    the same weights under LDM names with the "first_stage_model." prefix
                            (decoder attention as [C, C, 1, 1] convs, as LDM stores them)
  <name>/io.safetensors     latents (B, 4, 8, 8), image = vae.decode(latents / scaling_factor
                            + shift_factor).sample
                            (F32, before quantization) and image_u8 (B, H, W, 3, U8) =
                            VaeImageProcessor.postprocess(image, "pil") as arrays

Models (seeded random weights, GroupNorm affine randomized, conv_out scaled so the image spans
about [-1.3, 1.3]: some pixels clamp, most do not):
  sd    block_out_channels (8, 16, 16), layers_per_block 2, scaling 0.18215, batch 2
  xl    block_out_channels (8, 16), layers_per_block 1, scaling 0.13025, batch 1, and the old
        diffusers attention names (query/key/value/proj_attn) in its safetensors
  shift (8, 16), 1 layer, scaling 1.5305 and shift 0.0609 (Flux's values), no post_quant_conv,
        no mid attention; its reference is vae.decode(latents / scaling_factor + shift_factor)
        as the Flux/SD3 pipelines call it

The LDM names come from the mapping below; diffusers' own convert_ldm_vae_checkpoint must map
them back to exactly the diffusers names and tensors (asserted). CPU, float32, one thread.

Usage: python3 tools/make_vae_fixtures.py [--out tests/fixtures/vae]
"""
import argparse
import json
import os
import re

import numpy as np
import torch
from diffusers import AutoencoderKL
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import save_file

MODELS = {
    "sd": {"seed": 7, "batch": 2, "block_out_channels": [8, 16, 16], "layers_per_block": 2,
           "scaling_factor": 0.18215, "old_attention_names": False},
    "xl": {"seed": 13, "batch": 1, "block_out_channels": [8, 16], "layers_per_block": 1,
           "scaling_factor": 0.13025, "old_attention_names": True},
    "shift": {"seed": 3, "batch": 1, "block_out_channels": [8, 16], "layers_per_block": 1,
              "scaling_factor": 1.5305, "shift_factor": 0.0609, "old_attention_names": False,
              "extra": {"use_quant_conv": False, "use_post_quant_conv": False, "mid_block_add_attention": False}},
}

ATTN_LDM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
ATTN_OLD = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def ldm_name(name, n_levels):
    """diffusers AutoencoderKL name -> LDM first_stage_model name (ENGINE.md section 9)."""
    n = name
    n = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.block.{m[2]}.", n)
    n = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
               lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.upsample.", n)
    n = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", n)
    n = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", n)
    n = re.sub(r"\.mid_block\.resnets\.(\d+)\.", lambda m: f".mid.block_{int(m[1]) + 1}.", n)
    m = re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)$", n)
    if m:
        n = f"{m[1]}.mid.attn_1.{ATTN_LDM[m[2]]}.{m[3]}"
    n = n.replace(".conv_shortcut.", ".nin_shortcut.").replace(".conv_norm_out.", ".norm_out.")
    return n


def randomize(vae, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan_in) ** 0.5)


def make(name, spec, out_dir):
    torch.manual_seed(spec["seed"])
    n_levels = len(spec["block_out_channels"])
    config = dict(in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                  block_out_channels=spec["block_out_channels"], layers_per_block=spec["layers_per_block"],
                  down_block_types=["DownEncoderBlock2D"] * n_levels, up_block_types=["UpDecoderBlock2D"] * n_levels,
                  sample_size=8 * 2 ** (n_levels - 1) * 2, scaling_factor=spec["scaling_factor"],
                  shift_factor=spec.get("shift_factor"), **spec.get("extra", {}))
    shift = spec.get("shift_factor") or 0.0
    vae = AutoencoderKL(**config).eval()
    randomize(vae, spec["seed"])
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    latents = torch.randn((spec["batch"], 4, 8, 8), generator=g) * 0.8 * spec["scaling_factor"] / 0.18215
    with torch.no_grad():
        image = vae.decode(latents / spec["scaling_factor"] + shift).sample
        # Scale conv_out so the image spans about [-1.3, 1.3] (a few pixels clamp).
        k = 1.3 / image.abs().max().item()
        vae.decoder.conv_out.weight.mul_(k)
        vae.decoder.conv_out.bias.mul_(k)
        image = vae.decode(latents / spec["scaling_factor"] + shift).sample

    d = os.path.join(out_dir, name)
    vae.save_pretrained(os.path.join(d, "vae"), safe_serialization=True)
    reloaded = AutoencoderKL.from_pretrained(os.path.join(d, "vae"), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.equal(reloaded.decode(latents / spec["scaling_factor"] + shift).sample, image)

    state = {k: v.contiguous() for k, v in vae.state_dict().items()}
    if spec["old_attention_names"]:  # diffusers before 0.14 stored these names; loaders still read them
        old = {}
        for k, v in state.items():
            for new, legacy in ATTN_OLD.items():
                k = k.replace(f"attentions.0.{new}.", f"attentions.0.{legacy}.")
            old[k] = v
        save_file(old, os.path.join(d, "vae", "diffusion_pytorch_model.safetensors"))
        legacy = AutoencoderKL.from_pretrained(os.path.join(d, "vae"), torch_dtype=torch.float32).eval()
        with torch.no_grad():
            assert torch.equal(legacy.decode(latents / spec["scaling_factor"] + shift).sample, image)

    ldm = {}
    for k, v in state.items():
        lk = "first_stage_model." + ldm_name(k, n_levels)
        if ".mid.attn_1." in lk and v.ndim == 2:
            v = v[:, :, None, None]  # LDM's 1x1 convs
        ldm[lk] = v.contiguous()
    assert len(ldm) == len(state)
    back = convert_ldm_vae_checkpoint(ldm, config)
    assert set(back) == set(state), sorted(set(back) ^ set(state))
    for k in state:
        assert torch.equal(back[k].reshape(state[k].shape), state[k]), k
    save_file(ldm, os.path.join(d, "ldm.safetensors"))

    pil = VaeImageProcessor(vae_scale_factor=2 ** (n_levels - 1)).postprocess(image, output_type="pil")
    image_u8 = torch.from_numpy(np.stack([np.array(p) for p in pil]))  # (B, H, W, 3)
    save_file({"latents": latents.contiguous(), "image": image.contiguous(), "image_u8": image_u8.contiguous()},
              os.path.join(d, "io.safetensors"))
    x = image.numpy() * 0.5 + 0.5
    clamped = float(((x < 0) | (x > 1)).mean())
    print(f"{name}: image {tuple(image.shape)} in [{image.min():.3f}, {image.max():.3f}], "
          f"{100 * clamped:.1f}% clamped, {sum(p.numel() for p in vae.decoder.parameters())} decoder params")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/vae")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name, spec in MODELS.items():
        make(name, spec, args.out)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.out) for f in fs)
    print(f"{args.out}: {total} bytes")
    assert total < 3 * 1024 * 1024


if __name__ == "__main__":
    main()
