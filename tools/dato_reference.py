"""DaTo fixtures (docs METHOD.md §2-4) from the dato_diffusers runtime on the tiny SD1.5 fixture UNet.

The PyTorch implementation of the runtime is the package python/dato_diffusers (runtime.py: caching
by depth, pruning in attn1); this script drives it through a 10-step CFG loop (batch rows
[uncond; cond], guidance 7.5) with DDIM (eta 0) and PNDM/PLMS (skip_prk_steps: 11 UNet calls,
calls 0 and 1 both sampler step 0) under per-step schedules of (depth, ratio):
  depth 13 (= 12 skip branches + 1): full step, caches every up layer's main-path input;
  depth d in 1..12: down layers 0..d-1, then up layers 12-d..11, the input of up layer 12-d read
                    from the cache of the last full step;
  depth 0: no UNet call, the previous call's raw prediction (both rows) is reused;
  ratio r > 0: DaTo token pruning in the self-attention (attn1) of the level-0 (16x16)
               transformer blocks, base tokens chosen by the temporal noise difference.

Writes, under --out (default tests/fixtures/dato):
  <schedule>_<sampler>.safetensors   for schedules baseline, mixed, deepcache, prune
  prune_unit.safetensors, prune_unit_up.safetensors   one pruned attn1 call each, inputs and outputs
Checks: the layer-by-layer full forward equals unet(...).sample; the all-full ratio-0 schedule
reproduces the plain diffusers loop (and tests/fixtures/unet/sd15/loop_ddim.safetensors) bit-exactly;
a partial step of every depth right after a full step on the same inputs reproduces the full
output; the unit fixtures' attn1 outputs equal a masked dense recomputation written out here.
Everything runs on the CPU in float32 with one thread: reruns are bit-identical on one machine.

Usage: python3 tools/dato_reference.py [--out tests/fixtures/dato]   (finds ../python itself)
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, PNDMScheduler, UNet2DConditionModel
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from dato_diffusers import DaToUNet  # noqa: E402

FIXTURE = "tests/fixtures/unet/sd15"
GUIDANCE = 7.5
STEPS = 10
PATCH = 2          # one base token per 2x2 patch (the runtime's)
N_BRANCHES = 12    # skip branches (LDM input_blocks) of this UNet
FULL = N_BRANCHES + 1

SCHEDULES = {
    # every depth class (full, partial shallow and deep, reuse) and all ratios of the search space
    "mixed": ([13, 13, 2, 5, 0, 13, 1, 12, 3, 13], [0, 0, 0.3, 0.5, 0, 0.7, 0.4, 0.6, 0.3, 0]),
    "deepcache": ([13 if k % 3 == 0 else 2 for k in range(STEPS)], [0.0] * STEPS),  # deepcache:3:branch=1
    "prune": ([13] * STEPS, [0, 0] + [0.5] * (STEPS - 2)),
    "baseline": ([13] * STEPS, [0.0] * STEPS),
}


# ---- checks ------------------------------------------------------------------------------------------

def check_unit(attn, unit):
    """Recomputes the unit fixture's attn1 output another way: every query over the kept keys by an
    explicit masked softmax, pruned rows then replaced by their base token's row. Also reports how
    close the pruning decision was to a tie (the margin at the cut of the sorted similarities)."""
    x, pruned, assign = unit["x"], unit["pruned"].long(), unit["assign"].long()
    B, N, C = x.shape
    heads = attn.heads
    q = attn.to_q(x).view(B, N, heads, -1).transpose(1, 2)
    k = attn.to_k(x).view(B, N, heads, -1).transpose(1, 2)
    v = attn.to_v(x).view(B, N, heads, -1).transpose(1, 2)
    keep = torch.ones(B, N, dtype=torch.bool)
    keep.scatter_(1, pruned, False)
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~keep[:, None, None, :], float("-inf"))
    o = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, N, -1)
    o = attn.to_out[0](o)
    o = torch.where(keep[:, :, None], o, torch.gather(o, 1, assign[:, :, None].expand(-1, -1, C)))
    err = float((o - unit["attn_out"]).abs().max())
    print(f"unit attn1 output vs masked dense recomputation: max abs err {err:.3g}")
    assert err <= 1e-5
    assert bool((torch.gather(keep, 1, assign)).all()), "a token is assigned to a pruned token"
    base_set = [set(r.tolist()) for r in unit["base"]]
    assert all(not (set(r.tolist()) & bs) for r, bs in zip(pruned, base_set)), "a base token was pruned"
    for b in range(B):
        xn = F.normalize(x[b].double(), dim=-1)
        sim = (xn @ xn[unit["base"][b].long()].T).max(1).values
        cand = sorted((float(sim[i]) for i in range(N) if i not in base_set[b]), reverse=True)
        n = pruned.shape[1]
        print(f"unit row {b}: similarity margin at the prune cut {cand[n - 1] - cand[n]:.3g}")


# ---- the sampling loop --------------------------------------------------------------------------------

def make_scheduler(sampler):
    config = PNDMScheduler.load_config(os.path.join(FIXTURE, "scheduler"))
    s = DDIMScheduler.from_config(config) if sampler == "ddim" else PNDMScheduler.from_config(config)
    s.set_timesteps(STEPS)
    return s


def call_steps(sampler, n_calls):
    """Sampler step of every UNet call: PLMS (skip_prk_steps) calls twice in step 0."""
    if sampler == "ddim":
        return list(range(n_calls))
    assert n_calls == STEPS + 1
    return [0] + list(range(n_calls - 1))


def observer(records, margins):
    """Tells the runtime's pruned blocks to the unit fixtures (each block's first pruned call) and
    collects how near each decision was to a tie: the similarity gap at the prune cut and between
    a token's two closest bases."""
    def observe(attn, info):
        B, n = info["pruned"].shape
        for b, sims in enumerate(info["sims"]):
            is_base = torch.zeros(sims.shape[0], dtype=torch.bool)
            is_base[info["base"][b]] = True
            top2 = sims.topk(2, dim=1).values
            ranked = sims.max(1).values[~is_base].sort(descending=True).values
            if 0 < n < ranked.numel():
                margins.append(min(float(ranked[n - 1] - ranked[n]), float((top2[:, 0] - top2[:, 1])[~is_base].min())))
        for record in records:
            if record["attn1"] is attn:
                x = info["x"]
                record.update(x=x.clone(), score=info["score"].reshape(x.shape[0], -1).clone(),
                              base=info["base"].to(torch.int32), pruned=info["pruned"].to(torch.int32),
                              assign=info["assign"].to(torch.int32), attn_out=info["out"].clone(),
                              ratio=torch.tensor([info["ratio"]], dtype=torch.float32))
                record["attn1"] = None  # the block's first call only
    return observe


def run_schedule(unet, sampler, depth, ratio, init_latent, context, units=()):
    """The DaTo loop. Returns raw (n_calls, 2, 4, h, w), final (1, 4, h, w), call steps, timesteps."""
    sched = make_scheduler(sampler)
    model = DaToUNet(unet)
    model.install()
    steps = call_steps(sampler, len(sched.timesteps))
    x = init_latent.clone()
    raws, margins = [], []
    for call, t in enumerate(sched.timesteps):
        k = steps[call]
        if depth[k] > 0 and ratio[k] > 0:  # the schedules prune only where scores exist (no random pick)
            assert len(model.preds) >= 2, f"step {k} prunes before two predictions exist"
        model.observer = observer(units if call == unit_call(sampler, depth, ratio) else [], margins)
        inp = sched.scale_model_input(torch.cat([x, x]), t)
        raw = model(inp, t, context, step=k, depth=depth[k], ratio=ratio[k], n_cond=1)
        raws.append(raw)
        uncond, cond = raw.chunk(2)
        eps = uncond + GUIDANCE * (cond - uncond)
        x = sched.step(eps, t, x).prev_sample
    model.uninstall()
    if margins:
        print(f"{sampler}: smallest similarity margin of a pruning decision {min(margins):.3g}")
    return torch.stack(raws), x, steps, sched.timesteps.to(torch.float32)


def unit_blocks(unet):
    """(file, block, attn1) of the unit fixtures: the first prunable block, whose two rows see the same
    input (cross-attention has not yet acted), and the last one, whose rows differ."""
    blocks = ["down_blocks.0.attentions.0.transformer_blocks.0.attn1",
              "up_blocks.3.attentions.2.transformer_blocks.0.attn1"]
    files = ["prune_unit.safetensors", "prune_unit_up.safetensors"]
    return [(f, b, unet.get_submodule(b)) for f, b in zip(files, blocks)]


def unit_call(sampler, depth, ratio):
    """The call whose first pruned block is stored as the unit fixture: the first pruning call."""
    steps = call_steps(sampler, STEPS + (sampler != "ddim"))
    for call, k in enumerate(steps):
        if depth[k] > 0 and ratio[k] > 0:
            return call
    return -1


def plain_loop(unet, sampler, init_latent, context):
    sched = make_scheduler(sampler)
    x = init_latent.clone()
    for t in sched.timesteps:
        inp = sched.scale_model_input(torch.cat([x, x]), t)
        uncond, cond = unet(inp, t, encoder_hidden_states=context).sample.chunk(2)
        x = sched.step(uncond + GUIDANCE * (cond - uncond), t, x).prev_sample
    return x


# ---- output ------------------------------------------------------------------------------------------

DTYPES = {torch.float32: ("F32", "<f4"), torch.int32: ("I32", "<i4")}


def save_tensors(path, tensors, meta):
    """safetensors with a key-sorted header (reruns give identical bytes), F32 or I32."""
    header = {"__metadata__": dict(sorted(meta.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        code, np_dtype = DTYPES[t.dtype]
        data = t.numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.writelines(blobs)
    back = load_file(path)
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in back), path


def rel(a, b):
    return float((a - b).norm() / b.norm())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/dato")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    unet = UNet2DConditionModel.from_pretrained(os.path.join(FIXTURE, "unet"), torch_dtype=torch.float32).eval()
    loop = load_file(os.path.join(FIXTURE, "loop_ddim.safetensors"))
    init_latent, context = loop["init_latent"], loop["context"]

    with torch.no_grad():
        # 1. The layer-by-layer full forward against diffusers.
        io = load_file(os.path.join(FIXTURE, "io.safetensors"))
        model = DaToUNet(unet)
        model.install()
        call = lambda depth, ratio=0.0: model(io["sample"], io["timestep"][0], io["encoder_hidden_states"],
                                              step=0, depth=depth, ratio=ratio, n_cond=1)
        mine = call(FULL)
        ref = unet(io["sample"], io["timestep"][0], encoder_hidden_states=io["encoder_hidden_states"]).sample
        err = float((mine - ref).abs().max())
        print(f"full forward vs unet(...).sample: max abs err {err:.3g}")
        assert err <= 1e-6

        # 2. A partial step of every depth right after a full step on the same inputs = the full output.
        worst = max(float((call(d) - mine).abs().max()) for d in range(1, N_BRANCHES + 1))
        print(f"partial depths 1..12 after a full step, same inputs: max abs err {worst:.3g}")
        assert worst == 0.0

        # 3. A ratio that prunes no token (n = 0) changes nothing.
        err = float((call(FULL, 1e-3) - mine).abs().max())
        print(f"ratio pruning 0 tokens vs no pruning: max abs err {err:.3g}")
        assert err <= 1e-6
        model.uninstall()

        results = {}
        for sampler in ("ddim", "plms"):
            plain = plain_loop(unet, sampler, init_latent, context)
            if sampler == "ddim":
                assert torch.equal(plain, loop["final"]), "plain DDIM loop differs from loop_ddim.safetensors"
            for name, (depth, ratio) in SCHEDULES.items():
                units = {}
                if name == "mixed" and sampler == "ddim":
                    units = {f: {"attn1": blk, "block": b} for f, b, blk in unit_blocks(unet)}
                raw, final, steps, timesteps = run_schedule(unet, sampler, depth, ratio, init_latent, context,
                                                            list(units.values()))
                if name == "baseline":
                    # 4. All full, ratio 0 = the plain loop, bit for bit.
                    assert torch.equal(final, plain), f"{sampler} baseline differs by {(final - plain).abs().max()}"
                    print(f"{sampler}: all-full ratio-0 schedule reproduces the plain loop bit-exactly")
                results[(name, sampler)] = final
                tensors = {
                    "depth": torch.tensor(depth, dtype=torch.int32),
                    "ratio": torch.tensor(ratio, dtype=torch.float32),
                    "init_latent": init_latent, "context": context, "raw": raw, "final": final,
                    "call_step": torch.tensor(steps, dtype=torch.int32), "timesteps": timesteps,
                }
                meta = {"sampler": sampler, "guidance": str(GUIDANCE), "steps": str(STEPS), "schedule": name,
                        "n_calls": str(raw.shape[0]), "cfg_batch": "[uncond; cond]",
                        "model": FIXTURE, "scheduler": "DDIMScheduler eta 0" if sampler == "ddim"
                        else "PNDMScheduler skip_prk_steps (PLMS)"}
                save_tensors(os.path.join(args.out, f"{name}_{sampler}.safetensors"), tensors, meta)
                for fname, unit in units.items():
                    attn1, block = unit.pop("attn1"), unit.pop("block")
                    assert attn1 is None, f"{block} never pruned"
                    check_unit(unet.get_submodule(block), unit)
                    call = unit_call(sampler, depth, ratio)
                    save_tensors(os.path.join(args.out, fname), unit, {
                        "block": block,
                        "source": f"mixed_ddim call {call} (step {steps[call]})", "cfg_half": "1",
                        "patch": str(PATCH), "heads": str(unet.get_submodule(block).heads)})

        # 5. How far each schedule moves the final latent from the baseline's.
        for sampler in ("ddim", "plms"):
            base = results[("baseline", sampler)]
            for name in SCHEDULES:
                if name != "baseline":
                    r = rel(results[(name, sampler)], base)
                    print(f"{sampler} {name}: ||final - baseline|| / ||baseline|| = {r:.4%}")
                    assert r > 0, f"{sampler} {name} equals the baseline"


if __name__ == "__main__":
    main()
