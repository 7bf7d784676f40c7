"""Reference outputs for the dato engine's parity tests (run once by hand; CI never runs it).

Writes, under --out (default tests/fixtures):
  manifests/               real SD1.5 / SD2.1 / SDXL UNet parameter manifests (make_manifests.py)
  unet/{sd15,sd2v,sdxl}/   three tiny UNets with seeded random weights, each with
    unet/config.json + weights (diffusers layout; F32 / F16 / BF16 in two shards)
    scheduler/scheduler_config.json
    ldm_names.tsv          diffusers name <TAB> LDM name <TAB> shape, as the manifests
    io.safetensors         one batch-2 UNet call: inputs and `out`
    loop_ddim.safetensors, loop_dpmpp2m.safetensors   10-step CFG sampling loops at batch 1

Everything runs on the CPU in float32 with fixed seeds and one thread, so reruns are
bit-identical on one machine. The script checks that each folder reloads with
UNet2DConditionModel.from_pretrained and reproduces `out` exactly, and that renaming the
weights to LDM names (tools/ldm_names.py) and back with diffusers' own
convert_ldm_unet_checkpoint gives back every tensor.

Usage: python3 tools/make_fixtures.py [--out tests/fixtures]
"""
import argparse
import copy
import json
import os
import struct
import subprocess
import sys
import time

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file

import ldm_names
import make_manifests

SD_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
SD_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]

# Tiny models shaped like the real ones (same block types and options, small widths).
TINY = {
    "sd15": {
        "seed": 15,
        "store_dtype": torch.float32,
        "prediction_type": "epsilon",
        "max_shard_size": None,
        "config": {
            "sample_size": 16,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": SD_DOWN,
            "up_block_types": SD_UP,
            "block_out_channels": [16, 16, 32, 32],
            "layers_per_block": 2,
            "norm_num_groups": 8,
            "attention_head_dim": 2,  # the head count (diffusers' misnomer): head dims 8 / 8 / 16 / 16
            "cross_attention_dim": 24,
        },
    },
    "sd2v": {
        "seed": 21,
        "store_dtype": torch.float16,
        "prediction_type": "v_prediction",
        "max_shard_size": None,
        "config": {
            "sample_size": 16,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": SD_DOWN,
            "up_block_types": SD_UP,
            "block_out_channels": [16, 16, 32, 32],
            "layers_per_block": 2,
            "norm_num_groups": 8,
            "attention_head_dim": [1, 2, 2, 2],  # heads per level: head dims 16 / 8 / 16 / 16
            "cross_attention_dim": 32,
            "use_linear_projection": True,
            "upcast_attention": True,
        },
    },
    "sdxl": {
        "seed": 1024,
        "store_dtype": torch.bfloat16,
        "prediction_type": "epsilon",
        "max_shard_size": "split in two",  # replaced by a byte count below
        "config": {
            "sample_size": 16,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "block_out_channels": [16, 32, 32],
            "layers_per_block": 2,
            "norm_num_groups": 8,
            "transformer_layers_per_block": [1, 1, 2],  # the mid block takes the last: depth 2
            "attention_head_dim": [1, 2, 2],
            "use_linear_projection": True,
            "cross_attention_dim": 32,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 16 + 6 * 8,  # pooled text (16) + 6 sinusoids of 8
        },
    },
}
POOLED_DIM = 16      # SDXL text_embeds width of the tiny model
CONTEXT_TOKENS = 8   # encoder_hidden_states length
LATENT = (4, 16, 16)
IO_TIMESTEPS = [981.0, 501.0]
GUIDANCE = 7.5
LOOP_STEPS = 10

# SD1.5's scheduler/scheduler_config.json (PNDM), with the prediction type of the model.
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}


def init_weights(model, gen):
    """Seeded weights that keep activations O(1): matrices and kernels N(0, 1/fan_in), norm gammas
    1 + 0.1 N, all biases 0.05 N. Parameters are visited in named_parameters order."""
    norm_params = set()
    for module in model.modules():
        if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            norm_params.update(id(p) for p in module.parameters(recurse=False))
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if id(p) in norm_params and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.05 * noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise / fan_in ** 0.5)


def round_weights(model, dtype):
    """Rounds every parameter through dtype, kept in float32: the reference then sees exactly the
    values the stored F16/BF16 file holds."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def build_tiny(spec):
    torch.manual_seed(spec["seed"])
    model = UNet2DConditionModel(**spec["config"]).eval()
    init_weights(model, torch.Generator().manual_seed(spec["seed"]))
    round_weights(model, spec["store_dtype"])
    return model


def unet_call(model, sample, t, context, extra):
    added = {"text_embeds": extra["text_embeds"], "time_ids": extra["time_ids"]} if extra else None
    return model(sample, t, encoder_hidden_states=context, added_cond_kwargs=added).sample


def save_folder(model, spec, folder):
    """Writes unet/ (config + weights in the stored dtype) and scheduler/."""
    stored = copy.deepcopy(model).to(spec["store_dtype"])
    shard = spec["max_shard_size"]
    if shard is not None:
        total = sum(p.numel() * p.element_size() for p in stored.parameters())
        shard = total // 2 + total // 20  # two shards
    kwargs = {"max_shard_size": shard} if shard is not None else {}
    stored.save_pretrained(os.path.join(folder, "unet"), safe_serialization=True, **kwargs)
    sched = dict(SCHEDULER_CONFIG, prediction_type=spec["prediction_type"])
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2)
        f.write("\n")
    return sched


def check_stored_weights(folder, spec, model):
    """The weight files hold every parameter once, in the stored dtype, equal to the model's."""
    unet_dir = os.path.join(folder, "unet")
    files = sorted(f for f in os.listdir(unet_dir) if f.endswith(".safetensors"))
    want_files = 1 if spec["max_shard_size"] is None else 2
    assert len(files) == want_files, f"{unet_dir}: {files}"
    state = model.state_dict()
    seen = set()
    for fname in files:
        with safe_open(os.path.join(unet_dir, fname), "pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)
                assert t.dtype == spec["store_dtype"], f"{fname}:{k} is {t.dtype}"
                assert torch.equal(t.to(torch.float32), state[k]), f"{fname}:{k} differs"
                assert k not in seen, k
                seen.add(k)
    assert seen == set(state), f"{unet_dir}: tensors missing {sorted(set(state) - seen)[:5]}"
    return files


def make_io(model, spec, gen):
    ctx = spec["config"]["cross_attention_dim"]
    io = {
        "sample": torch.randn((2, *LATENT), generator=gen),
        "timestep": torch.tensor(IO_TIMESTEPS, dtype=torch.float32),
        "encoder_hidden_states": torch.randn((2, CONTEXT_TOKENS, ctx), generator=gen),
    }
    extra = None
    if spec["config"].get("addition_embed_type") == "text_time":
        io["text_embeds"] = torch.randn((2, POOLED_DIM), generator=gen)
        # (original h, w, crop top, left, target h, w) in pixels of the 128x128 image of a 16x16 latent
        io["time_ids"] = torch.tensor([[128, 128, 0, 0, 128, 128], [96, 128, 16, 0, 128, 128]], dtype=torch.float32)
        extra = io
    with torch.no_grad():
        io["out"] = unet_call(model, io["sample"], io["timestep"], io["encoder_hidden_states"], extra)
    return io


def make_scheduler(kind, sched_config):
    if kind == "ddim":
        return DDIMScheduler.from_config(sched_config)
    return DPMSolverMultistepScheduler.from_config(sched_config, algorithm_type="dpmsolver++", solver_order=2)


def run_loop(model, spec, sched_config, kind, gen):
    """10 steps of classifier-free guidance at batch 1, batch [uncond; cond] through the UNet."""
    scheduler = make_scheduler(kind, sched_config)
    scheduler.set_timesteps(LOOP_STEPS)
    ctx = spec["config"]["cross_attention_dim"]
    rec = {
        "init_latent": torch.randn((1, *LATENT), generator=gen) * scheduler.init_noise_sigma,
        "context": torch.randn((2, CONTEXT_TOKENS, ctx), generator=gen),
    }
    extra = None
    if spec["config"].get("addition_embed_type") == "text_time":
        rec["text_embeds"] = torch.randn((2, POOLED_DIM), generator=gen)
        rec["time_ids"] = torch.tensor([[128, 128, 0, 0, 128, 128]] * 2, dtype=torch.float32)
        extra = rec
    x = rec["init_latent"].clone()
    latents = []
    with torch.no_grad():
        for t in scheduler.timesteps:
            inp = scheduler.scale_model_input(torch.cat([x, x]), t)
            out = unet_call(model, inp, t, rec["context"], extra)
            uncond, cond = out.chunk(2)
            eps = uncond + GUIDANCE * (cond - uncond)
            x = scheduler.step(eps, t, x).prev_sample
            latents.append(x)
    rec["timesteps"] = scheduler.timesteps.to(torch.float32)
    rec["latents"] = torch.stack(latents)
    rec["final"] = x
    cfg = scheduler.config
    meta = {
        "scheduler": type(scheduler).__name__,
        "guidance": str(GUIDANCE),
        "steps": str(LOOP_STEPS),
        "prediction_type": cfg.prediction_type,
        "timestep_spacing": cfg.timestep_spacing,
        "steps_offset": str(cfg.steps_offset),
        "beta_schedule": f"{cfg.beta_schedule} {cfg.beta_start} {cfg.beta_end}",
        "init_noise_sigma": str(float(scheduler.init_noise_sigma)),
        "cfg_batch": "[uncond; cond]",
    }
    if kind == "ddim":
        meta.update(eta="0", set_alpha_to_one=str(cfg.set_alpha_to_one))
    else:
        meta.update(algorithm_type=cfg.algorithm_type, solver_order=str(cfg.solver_order),
                    solver_type=cfg.solver_type, lower_order_final=str(cfg.lower_order_final),
                    final_sigmas_type=cfg.final_sigmas_type)
    return rec, meta


def save_tensors(path, tensors, meta):
    """F32 safetensors with a key-sorted header, so reruns give identical bytes (the library writes
    __metadata__ in hash order). Header padded with spaces to 8 bytes, as the library does."""
    header = {"__metadata__": dict(sorted(meta.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.writelines(blobs)
    back = load_file(path)  # the library must read it back to the same values
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k].to(torch.float32)) for k in back), path


def describe(tensors):
    return ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())


def make_tiny(name, spec, out_dir):
    folder = os.path.join(out_dir, "unet", name)
    model = build_tiny(spec)
    sched_config = save_folder(model, spec, folder)
    files = check_stored_weights(folder, spec, model)

    # Names: our table against diffusers' converter, then the per-model TSV.
    state = model.state_dict()
    config = dict(model.config)
    ldm_names.check_against_diffusers(state, config)
    table = ldm_names.module_table(config)
    entries = [(d, ldm_names.diffusers_to_ldm(d, table), tuple(t.shape)) for d, t in state.items()]
    n_params = sum(t.numel() for t in state.values())
    ldm_names.write_tsv(os.path.join(folder, "ldm_names.tsv"),
                        f"# model=tiny-{name} params={n_params} tensors={len(entries)}", entries)

    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    io = make_io(model, spec, gen)
    dtype_name = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[spec["store_dtype"]]
    save_tensors(os.path.join(folder, "io.safetensors"), io,
                 {"model": f"tiny-{name}", "weights": dtype_name, "prediction_type": spec["prediction_type"],
                  "out": "unet(sample, timestep, encoder_hidden_states[, text_embeds, time_ids]).sample"})

    reloaded = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"), torch_dtype=torch.float32).eval()
    extra = io if "text_embeds" in io else None
    with torch.no_grad():
        again = unet_call(reloaded, io["sample"], io["timestep"], io["encoder_hidden_states"], extra)
    assert torch.equal(again, io["out"]), f"{name}: reloaded folder differs by {(again - io['out']).abs().max()}"

    out = io["out"]
    print(f"{name}: {n_params:,} params ({dtype_name}, {len(files)} file(s)); io: {describe(io)}")
    print(f"  out std {out.std():.4f} max|.| {out.abs().max():.4f}; "
          f"batch items differ by {(out[0] - out[1]).abs().max():.4f}")
    for kind, fname in [("ddim", "loop_ddim.safetensors"), ("dpmpp2m", "loop_dpmpp2m.safetensors")]:
        rec, meta = run_loop(model, spec, sched_config, kind, torch.Generator().manual_seed(spec["seed"] + 2))
        assert torch.isfinite(rec["latents"]).all(), f"{name} {kind}: non-finite latents"
        save_tensors(os.path.join(folder, fname), rec, meta)
        ts = [int(t) for t in rec["timesteps"]]
        print(f"  {fname}: {meta['scheduler']} t={ts}; final std {rec['final'].std():.4f}")


def print_sizes(out_dir):
    """Sizes of what this script writes (other files under out_dir are not ours)."""
    total = 0
    walk = [w for sub in ("manifests", "unet") for w in sorted(os.walk(os.path.join(out_dir, sub)))]
    for root, _, files in walk:
        for f in sorted(files):
            path = os.path.join(root, f)
            size = os.path.getsize(path)
            total += size
            print(f"{size:>10,}  {os.path.relpath(path, out_dir)}")
    print(f"{total:>10,}  total")
    assert total < 8_000_000, "fixtures over the 8 MB budget"


# The other components' generators, each writing its own folder under tests/fixtures (and the
# tokenizer's vocabulary under models/clip_tokenizer); run from the repository root.
OTHER_GENERATORS = ["make_sampler_fixtures.py", "make_tokenizer_fixtures.py", "make_text_encoder_fixtures.py",
                    "make_vae_fixtures.py", "make_ckpt_fixtures.py", "make_pipeline_fixtures.py"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--unet-only", action="store_true", help="only the UNet fixtures and manifests")
    args = ap.parse_args()
    out_dir = args.out
    start = time.time()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    make_manifests.main(os.path.join(out_dir, "manifests"))
    for name, spec in TINY.items():
        make_tiny(name, spec, out_dir)
    print_sizes(out_dir)
    if not args.unet_only:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for script in OTHER_GENERATORS:
            print(f"== {script}")
            subprocess.run([sys.executable, os.path.join(repo, "tools", script)], cwd=repo, check=True)
    print(f"done in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
