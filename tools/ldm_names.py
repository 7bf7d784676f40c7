"""diffusers <-> LDM (CompVis / single-file) names of UNet2DConditionModel parameters.

A table-driven port of the UNet part of diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py, generalised to any
layers_per_block, to transformer depth > 1 (names inside a transformer are the same in
both layouts) and to SDXL's add_embedding (LDM label_emb). The inverse direction is the one
diffusers.loaders.single_file_utils.convert_ldm_unet_checkpoint implements; make_manifests.py
and make_fixtures.py check that the two agree on every tensor.

Names carry no model prefix: diffusers `unet.` and LDM `model.diffusion_model.` are stripped.
"""

# Top-level modules: diffusers prefix -> LDM prefix.
TOP_LEVEL = [
    ("time_embedding.linear_1", "time_embed.0"),
    ("time_embedding.linear_2", "time_embed.2"),
    ("add_embedding.linear_1", "label_emb.0.0"),  # SDXL text_time conditioning
    ("add_embedding.linear_2", "label_emb.0.2"),
    ("conv_in", "input_blocks.0.0"),
    ("conv_norm_out", "out.0"),
    ("conv_out", "out.2"),
]

# Inside a ResBlock: diffusers ResnetBlock2D submodule -> LDM ResBlock submodule.
RESNET_PARTS = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]

RES, PLAIN = "res", "plain"  # how the part of a name below the module prefix is renamed


def module_table(config):
    """Rows (diffusers module prefix, LDM module prefix, kind) for a diffusers UNet config dict."""
    lpb = config.get("layers_per_block", 2)
    if not isinstance(lpb, int):
        raise ValueError(f"layers_per_block must be an int, got {lpb!r}")
    if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        raise ValueError(f"unsupported mid_block_type {config.get('mid_block_type')!r}")
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    n_levels = len(down_types)
    rows = [(d, l, PLAIN) for d, l in TOP_LEVEL]

    # Down path: level i owns input_blocks (lpb+1)*i+1 .. (lpb+1)*(i+1); the last is its downsampler.
    for i, block_type in enumerate(down_types):
        for j in range(lpb):
            n = (lpb + 1) * i + j + 1
            rows.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{n}.0", RES))
            if block_type.startswith("CrossAttn"):
                rows.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{n}.1", PLAIN))
        if i < n_levels - 1:
            rows.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(lpb + 1) * (i + 1)}.0.op", PLAIN))

    rows.append(("mid_block.resnets.0", "middle_block.0", RES))
    rows.append(("mid_block.attentions.0", "middle_block.1", PLAIN))
    rows.append(("mid_block.resnets.1", "middle_block.2", RES))

    # Up path: level i owns output_blocks (lpb+1)*i .. (lpb+1)*i+lpb; the upsampler sits in the last
    # one, after the ResBlock (slot 1) or after the ResBlock and the transformer (slot 2).
    for i, block_type in enumerate(up_types):
        has_attn = block_type.startswith("CrossAttn")
        for j in range(lpb + 1):
            n = (lpb + 1) * i + j
            rows.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{n}.0", RES))
            if has_attn:
                rows.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{n}.1", PLAIN))
        if i < n_levels - 1:
            slot = 2 if has_attn else 1
            rows.append((f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{(lpb + 1) * i + lpb}.{slot}.conv", PLAIN))
    return rows


def _rename(name, table, src, dst):
    """Renames one parameter name from layout src to dst (0 = diffusers, 1 = LDM) by longest prefix."""
    best = None
    for row in table:
        prefix = row[src]
        if name.startswith(prefix + ".") and (best is None or len(prefix) > len(best[src])):
            best = row
    if best is None:
        raise KeyError(f"no {['diffusers', 'LDM'][src]} module matches parameter {name!r}")
    rest = name[len(best[src]) + 1:]
    if best[2] == RES:
        for part in RESNET_PARTS:
            if rest.startswith(part[src] + "."):
                rest = part[dst] + rest[len(part[src]):]
                break
        else:
            raise KeyError(f"unknown ResBlock parameter {name!r}")
    return best[dst] + "." + rest


def diffusers_to_ldm(name, table):
    """'down_blocks.1.resnets.0.norm1.weight' -> 'input_blocks.4.0.in_layers.0.weight'."""
    return _rename(name, table, 0, 1)


def ldm_to_diffusers(name, table):
    """Inverse of diffusers_to_ldm."""
    return _rename(name, table, 1, 0)


def state_dict_to_ldm(state_dict, config):
    """A diffusers UNet state dict with LDM names (same tensors, no prefix)."""
    table = module_table(config)
    return {diffusers_to_ldm(k, table): v for k, v in state_dict.items()}


def write_tsv(path, header, entries):
    """entries: (diffusers_name, ldm_name, shape) rows; written sorted by diffusers name."""
    with open(path, "w") as f:
        f.write(header + "\n")
        for d, l, shape in sorted(entries):
            f.write(f"{d}\t{l}\t{','.join(str(int(s)) for s in shape)}\n")


def check_against_diffusers(state_dict, config):
    """Converts state_dict to LDM names here and back with diffusers' own converter; asserts that
    every name maps back to itself with the very same tensor object. Returns the LDM dict."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    ldm = state_dict_to_ldm(state_dict, config)
    assert len(ldm) == len(state_dict), "two diffusers names map to one LDM name"
    table = module_table(config)
    for k in state_dict:
        assert ldm_to_diffusers(diffusers_to_ldm(k, table), table) == k, k
    back = convert_ldm_unet_checkpoint({"model.diffusion_model." + k: v for k, v in ldm.items()}, dict(config))
    missing = sorted(set(state_dict) - set(back))
    extra = sorted(set(back) - set(state_dict))
    assert not missing and not extra, f"round trip: missing {missing[:5]} extra {extra[:5]}"
    for k, v in state_dict.items():
        assert back[k] is v, f"round trip moved another tensor into {k}"
    return ldm
