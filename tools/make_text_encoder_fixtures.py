"""Reference outputs for the CLIP text encoder parity test (run once by hand; CI never runs it).

Writes, under --out (default tests/fixtures/text_encoder), three tiny seeded models shaped
like the SD family's text encoders, each as a diffusers text_encoder/ folder (config.json +
model.safetensors with the hub's `text_model.` names) and one io.safetensors holding int32
`ids` (2, 77) and the transformers outputs:
  clip_l/    CLIPTextModel, quick_gelu, eos_token_id 2 (the legacy argmax-of-ids pooling), as
             SD1's and SDXL's first encoder. io: last_hidden_state, hidden_states_m2
             (hidden_states[-2], no final LayerNorm), pooled (pooler_output).
  open_h/    CLIPTextModel, gelu, 3 layers (OpenCLIP ViT-H style, SD2). io: last_hidden_state,
             penultimate_ln (final_layer_norm(hidden_states[-2]): SD2's output).
  open_h_sd2/  the same model cut to its first 2 layers, as diffusers ships SD2's encoder
             (num_hidden_layers 23 of 24): its last_hidden_state is open_h's penultimate_ln.
  open_g/    CLIPTextModelWithProjection, gelu, projection_dim 16, eos_token_id 500 (first
             position of eos pooling), as SDXL's text_encoder_2. io: last_hidden_state,
             hidden_states_m2, text_embeds.
and single-file (LDM) checkpoints of them:
  ldm_sd1.safetensors    clip_l under "cond_stage_model.transformer." with HF names
  clip_l_bare.safetensors  clip_l without "text_model." (how transformers 5 saves CLIPTextModel)
  ldm_sd2.safetensors    open_h under "cond_stage_model.model." with OpenCLIP names
                         (fused attn.in_proj_weight, positional_embedding, ln_final, ...)
  ldm_sdxl.safetensors   clip_l under "conditioner.embedders.0.transformer." and open_g
                         under "conditioner.embedders.1.model." (OpenCLIP, text_projection
                         stored (W, P) as OpenCLIP applies it: x @ P)

Everything runs on the CPU in float32 with fixed seeds. The script checks its OpenCLIP
conversion by rebuilding the HF state dict from it.

Usage: python3 tools/make_text_encoder_fixtures.py [--out tests/fixtures/text_encoder]
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

L = 77  # SD's context length

BASE = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_attention_heads=4,
            max_position_embeddings=77, layer_norm_eps=1e-5, bos_token_id=0, pad_token_id=1)
MODELS = {
    "clip_l": dict(BASE, num_hidden_layers=3, hidden_act="quick_gelu", eos_token_id=2, projection_dim=16),
    "open_h": dict(BASE, num_hidden_layers=3, hidden_act="gelu", eos_token_id=2, projection_dim=16),
    "open_g": dict(BASE, num_hidden_layers=3, hidden_act="gelu", eos_token_id=500, projection_dim=16,
                   layer_norm_eps=1e-6),
}


def make_ids(seed, eos, eos_pos, pad, legacy):
    """(2, L) int ids: bos, random words, eos at eos_pos[b], then padding. The legacy (argmax)
    rows keep every word below eos; the first-position rows put larger ids after eos so the
    argmax rule would pick the wrong token."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, eos if legacy else 1000, (2, L), generator=g)
    for b, p in enumerate(eos_pos):
        ids[b, 0] = 0
        ids[b, 1:p][ids[b, 1:p] == eos] = eos - 1  # no eos before the eos position
        ids[b, p] = eos
        ids[b, p + 1:] = pad[b]
    return ids


def randomize(model, seed):
    """Seeded normals on every parameter (LayerNorm gammas around 1): the default init
    leaves biases zero and gammas one, which would hide bugs in them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif "embedding" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.2 * noise)


def hub_names(sd, with_projection):
    """transformers 5 saves CLIPTextModel without the `text_model.` prefix; the hub's SD
    folders (and CLIPTextModelWithProjection) have it."""
    if with_projection:
        return dict(sd)
    return {"text_model." + k: v for k, v in sd.items()}


def to_open_clip(sd, with_projection):
    """HF CLIP text names (`text_model.`-prefixed) -> OpenCLIP names."""
    out = {}
    t = "text_model."
    out["token_embedding.weight"] = sd[t + "embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd[t + "embeddings.position_embedding.weight"]
    out["ln_final.weight"] = sd[t + "final_layer_norm.weight"]
    out["ln_final.bias"] = sd[t + "final_layer_norm.bias"]
    n = 0
    while f"{t}encoder.layers.{n}.layer_norm1.weight" in sd:
        h, o = f"{t}encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for a, b in [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("self_attn.out_proj", "attn.out_proj"),
                     ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]:
            out[o + b + ".weight"] = sd[h + a + ".weight"]
            out[o + b + ".bias"] = sd[h + a + ".bias"]
        out[o + "attn.in_proj_weight"] = torch.cat([sd[h + f"self_attn.{p}_proj.weight"] for p in "qkv"], 0)
        out[o + "attn.in_proj_bias"] = torch.cat([sd[h + f"self_attn.{p}_proj.bias"] for p in "qkv"], 0)
        n += 1
    if with_projection:
        out["text_projection"] = sd["text_projection.weight"].t().contiguous()  # (W, P): x @ P
    out["logit_scale"] = torch.tensor(4.6052)  # real checkpoints carry it; the loader must ignore it
    return out


def from_open_clip(oc, with_projection):
    """The inverse of to_open_clip, to check it."""
    sd = {}
    t = "text_model."
    sd[t + "embeddings.token_embedding.weight"] = oc["token_embedding.weight"]
    sd[t + "embeddings.position_embedding.weight"] = oc["positional_embedding"]
    sd[t + "final_layer_norm.weight"] = oc["ln_final.weight"]
    sd[t + "final_layer_norm.bias"] = oc["ln_final.bias"]
    n = 0
    while f"transformer.resblocks.{n}.ln_1.weight" in oc:
        h, o = f"{t}encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for a, b in [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("self_attn.out_proj", "attn.out_proj"),
                     ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]:
            sd[h + a + ".weight"] = oc[o + b + ".weight"]
            sd[h + a + ".bias"] = oc[o + b + ".bias"]
        for i, p in enumerate("qkv"):
            w, b = oc[o + "attn.in_proj_weight"], oc[o + "attn.in_proj_bias"]
            W = w.shape[1]
            sd[h + f"self_attn.{p}_proj.weight"] = w[i * W:(i + 1) * W]
            sd[h + f"self_attn.{p}_proj.bias"] = b[i * W:(i + 1) * W]
        n += 1
    if with_projection:
        sd["text_projection.weight"] = oc["text_projection"].t()
    return sd


def save_folder(model, folder, with_projection):
    os.makedirs(folder, exist_ok=True)
    model.config.save_pretrained(folder)
    sd = hub_names({k: v.contiguous() for k, v in model.state_dict().items()}, with_projection)
    save_file(sd, os.path.join(folder, "model.safetensors"))
    return sd


def prefixed(sd, prefix):
    return {prefix + k: v.contiguous() for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/text_encoder")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    hub = {}

    # clip_l: legacy eos rule; row 0 pads with eos (SD1's tokenizer), row 1 with 0
    cfg = CLIPTextConfig(**MODELS["clip_l"])
    m = CLIPTextModel(cfg).eval()
    randomize(m, 1)
    ids = make_ids(11, 999, [9, 76], [999, 0], legacy=True)
    with torch.no_grad():
        o = m(input_ids=ids, output_hidden_states=True)
    folder = os.path.join(args.out, "clip_l")
    hub["clip_l"] = save_folder(m, folder, False)
    save_file({"ids": ids.to(torch.int32), "last_hidden_state": o.last_hidden_state.contiguous(),
               "hidden_states_m2": o.hidden_states[-2].contiguous(), "pooled": o.pooler_output.contiguous()},
              os.path.join(folder, "io.safetensors"))

    # open_h: SD2's rule, final_layer_norm(hidden_states[-2]); and the 2-layer folder diffusers ships
    cfg = CLIPTextConfig(**MODELS["open_h"])
    m = CLIPTextModel(cfg).eval()
    randomize(m, 2)
    ids = make_ids(12, 999, [5, 40], [0, 0], legacy=True)
    with torch.no_grad():
        o = m(input_ids=ids, output_hidden_states=True)
        penultimate_ln = m.final_layer_norm(o.hidden_states[-2])
    folder = os.path.join(args.out, "open_h")
    hub["open_h"] = save_folder(m, folder, False)
    save_file({"ids": ids.to(torch.int32), "last_hidden_state": o.last_hidden_state.contiguous(),
               "penultimate_ln": penultimate_ln.contiguous()}, os.path.join(folder, "io.safetensors"))
    cut = CLIPTextModel(CLIPTextConfig(**dict(MODELS["open_h"], num_hidden_layers=2))).eval()
    missing = cut.load_state_dict(m.state_dict(), strict=False)
    assert not missing.missing_keys, missing
    with torch.no_grad():
        oc = cut(input_ids=ids)
    assert torch.equal(oc.last_hidden_state, penultimate_ln), "the cut model is not SD2's penultimate rule"
    save_folder(cut, os.path.join(args.out, "open_h_sd2"), False)

    # open_g: with projection, first-position eos rule (larger ids after eos)
    cfg = CLIPTextConfig(**MODELS["open_g"])
    m = CLIPTextModelWithProjection(cfg).eval()
    randomize(m, 3)
    ids = make_ids(13, 500, [20, 60], [500, 0], legacy=False)
    assert (ids.argmax(-1) != torch.tensor([20, 60])).any(), "ids do not tell the two eos rules apart"
    with torch.no_grad():
        o = m(input_ids=ids, output_hidden_states=True)
    folder = os.path.join(args.out, "open_g")
    hub["open_g"] = save_folder(m, folder, True)
    save_file({"ids": ids.to(torch.int32), "last_hidden_state": o.last_hidden_state.contiguous(),
               "hidden_states_m2": o.hidden_states[-2].contiguous(), "text_embeds": o.text_embeds.contiguous()},
              os.path.join(folder, "io.safetensors"))

    # single files; check the OpenCLIP conversion round-trips
    for name, proj in [("open_h", False), ("open_g", True)]:
        back = from_open_clip(to_open_clip(hub[name], proj), proj)
        assert back.keys() == hub[name].keys() and all(torch.equal(back[k], hub[name][k]) for k in back), name
    save_file(prefixed(hub["clip_l"], "cond_stage_model.transformer."), os.path.join(args.out, "ldm_sd1.safetensors"))
    bare = {k[len("text_model."):]: v for k, v in hub["clip_l"].items()}  # as transformers 5 saves CLIPTextModel
    save_file(bare, os.path.join(args.out, "clip_l_bare.safetensors"))
    save_file(prefixed(to_open_clip(hub["open_h"], False), "cond_stage_model.model."),
              os.path.join(args.out, "ldm_sd2.safetensors"))
    sdxl = prefixed(hub["clip_l"], "conditioner.embedders.0.transformer.")
    sdxl.update(prefixed(to_open_clip(hub["open_g"], True), "conditioner.embedders.1.model."))
    save_file(sdxl, os.path.join(args.out, "ldm_sdxl.safetensors"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
