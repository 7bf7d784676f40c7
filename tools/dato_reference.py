"""Independent PyTorch reference of DaTo (docs METHOD.md §2-4) on the tiny SD1.5 fixture UNet.

Runs a 10-step CFG loop (batch rows [uncond; cond], guidance 7.5) with DDIM (eta 0) and PNDM/PLMS
(skip_prk_steps: 11 UNet calls, calls 0 and 1 both sampler step 0) under per-step schedules of
(depth, ratio):
  depth 13 (= 12 skip branches + 1): full step, caches every up layer's main-path input;
  depth d in 1..12: down layers 0..d-1, then up layers 12-d..11, the input of up layer 12-d read
                    from the cache of the last full step;
  depth 0: no UNet call, the previous call's raw prediction (both rows) is reused;
  ratio r > 0: ToMe/DaTo token pruning in the self-attention (attn1) of the level-0 (16x16)
               transformer blocks, base tokens chosen by the temporal noise difference.

The UNet forward is composed here from diffusers' modules (time embedding, resnets, samplers,
conv_norm_out/act/conv_out); the transformer blocks and attention are written out so that attn1
can prune. Layer numbering is LDM's: input_blocks 0..11 (conv_in, then per level (resnet[, attn])
x 2 and a downsampler, the last level without one), output_blocks 0..11 (per up block, three
(resnet[, attn][, upsampler]) groups); output block j concatenates the skip of input block 11 - j.

Writes, under --out (default tests/fixtures/dato):
  <schedule>_<sampler>.safetensors   for schedules baseline, mixed, deepcache, prune
  prune_unit.safetensors            one pruned attn1 call, inputs and outputs
Checks: the full forward equals unet(...).sample; the all-full ratio-0 schedule reproduces the plain
diffusers loop (and tests/fixtures/unet/sd15/loop_ddim.safetensors) bit-exactly; a partial step of
every depth right after a full step on the same inputs reproduces the full output.
Everything runs on the CPU in float32 with one thread: reruns are bit-identical on one machine.

Usage: python3 tools/dato_reference.py [--out tests/fixtures/dato]
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, PNDMScheduler, UNet2DConditionModel
from safetensors.torch import load_file

FIXTURE = "tests/fixtures/unet/sd15"
GUIDANCE = 7.5
STEPS = 10
PATCH = 2          # one base token per 2x2 patch
PRUNE_LEVEL = 0    # transformer blocks at levels <= this prune (the 16x16 level)
N_BRANCHES = 12    # skip branches (LDM input_blocks) of this UNet
FULL = N_BRANCHES + 1

SCHEDULES = {
    # every depth class (full, partial shallow and deep, reuse) and all ratios of the search space
    "mixed": ([13, 13, 2, 5, 0, 13, 1, 12, 3, 13], [0, 0, 0.3, 0.5, 0, 0.7, 0.4, 0.6, 0.3, 0]),
    "deepcache": ([13 if k % 3 == 0 else 2 for k in range(STEPS)], [0.0] * STEPS),  # deepcache:3:branch=1
    "prune": ([13] * STEPS, [0, 0] + [0.5] * (STEPS - 2)),
    "baseline": ([13] * STEPS, [0.0] * STEPS),
}


# ---- the UNet, layer by layer -----------------------------------------------------------------------

def input_layers(unet):
    """The 12 LDM input blocks as lists of (kind, module, level)."""
    layers = [[("conv_in", unet.conv_in, 0)]]
    for level, block in enumerate(unet.down_blocks):
        attns = getattr(block, "attentions", None)
        for i, resnet in enumerate(block.resnets):
            layer = [("resnet", resnet, level)]
            if attns is not None:
                layer.append(("transformer", attns[i], level))
            layers.append(layer)
        if block.downsamplers is not None:
            layers.append([("down", block.downsamplers[0], level)])
    assert len(layers) == N_BRANCHES, len(layers)
    return layers


def output_layers(unet):
    """The 12 LDM output blocks: per up block, (resnet[, attention][, upsampler]) groups."""
    n_levels = len(unet.up_blocks)
    layers = []
    for b, block in enumerate(unet.up_blocks):
        level = n_levels - 1 - b
        attns = getattr(block, "attentions", None)
        for i, resnet in enumerate(block.resnets):
            layer = [("resnet", resnet, level)]
            if attns is not None:
                layer.append(("transformer", attns[i], level))
            if i == len(block.resnets) - 1 and block.upsamplers is not None:
                layer.append(("up", block.upsamplers[0], level))
            layers.append(layer)
    assert len(layers) == N_BRANCHES, len(layers)
    return layers


def attention(attn, x, context):
    """Multi-head attention of x (B, N, C) over context (B, M, Cc), as diffusers' AttnProcessor2_0."""
    B = x.shape[0]
    q = attn.to_q(x)
    k = attn.to_k(context)
    v = attn.to_v(context)
    head_dim = k.shape[-1] // attn.heads
    q = q.view(B, -1, attn.heads, head_dim).transpose(1, 2)
    k = k.view(B, -1, attn.heads, head_dim).transpose(1, 2)
    v = v.view(B, -1, attn.heads, head_dim).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)  # scale 1/sqrt(head_dim)
    o = o.transpose(1, 2).reshape(B, -1, attn.heads * head_dim)
    return attn.to_out[1](attn.to_out[0](o))


def diff_score(eps_a, eps_b):
    """D (B, H, W) = mean over channels of |eps_a - eps_b| (accumulated in float64)."""
    C = eps_a.shape[1]
    return ((eps_a.double() - eps_b.double()).abs().sum(1) / C).float()


def choose_base(score):
    """score (H, W) -> (P,) int64: per 2x2 patch (row-major patch order) the flat index of the
    highest score, ties to the lowest flat index."""
    H, W = score.shape
    base = []
    for py in range(0, H, PATCH):
        for px in range(0, W, PATCH):
            best = py * W + px
            for y in range(py, min(py + PATCH, H)):
                for x in range(px, min(px + PATCH, W)):
                    if score[y, x] > score.view(-1)[best]:
                        best = y * W + x
            base.append(best)
    return torch.tensor(base, dtype=torch.int64)


def n_pruned(ratio, N, P):
    n = math.floor(float(np.float32(ratio) * np.float32(N) + np.float32(1e-4)))  # float32, as the C side
    return min(n, N - P)


def pruned_self_attention(attn, x, ratio, score, H, W, n_cond, records=(), margins=None):
    """attn1 over the kept tokens of x (B, N, C); pruned tokens take their closest base token's output.
    score (B, h, w): dynamics at latent resolution; n_cond: rows [0, n_cond) are uncond and take the
    base positions of row + n_cond."""
    B, N, C = x.shape
    stride = score.shape[1] // H
    pooled = F.avg_pool2d(score[:, None], stride)[:, 0] if stride > 1 else score  # (B, H, W)
    bases = [None] * B
    for b in range(n_cond, B):
        bases[b] = choose_base(pooled[b])
    for b in range(n_cond):
        bases[b] = bases[b + n_cond]
    P = bases[-1].numel()
    n = n_pruned(ratio, N, P)
    kept_rows, pruned_rows, assigns = [], [], []
    for b in range(B):
        base = bases[b]
        norm2 = (x[b].double() ** 2).sum(-1)
        inv = torch.where(norm2 > 0, 1.0 / norm2.sqrt(), torch.zeros_like(norm2)).float()
        xn = x[b] * inv[:, None]                       # (N, C)
        s = xn @ xn[base].T                            # (N, P) cosine similarities
        j = torch.argmax(s, dim=1)                     # first maximum: lowest j on ties
        sim = s.gather(1, j[:, None])[:, 0]
        assign = base[j].clone()
        is_base = torch.zeros(N, dtype=torch.bool)
        is_base[base] = True
        assign[is_base] = torch.arange(N)[is_base]
        candidates = [i for i in range(N) if not is_base[i]]
        candidates.sort(key=lambda i: (-float(sim[i]), i))  # highest sim first, ties lowest index
        if margins is not None and 0 < n < len(candidates):  # how near the decisions were to ties: the prune cut, the closest base
            top2 = s.topk(2, dim=1).values
            margins.append(min(float(sim[candidates[n - 1]] - sim[candidates[n]]),
                               float((top2[:, 0] - top2[:, 1])[~is_base].min())))
        pruned = sorted(candidates[:n])
        pruned_set = set(pruned)
        kept = [i for i in range(N) if i not in pruned_set]
        kept_rows.append(kept)
        pruned_rows.append(candidates[:n])
        assigns.append(assign)
    kept_idx = torch.tensor(kept_rows, dtype=torch.int64)                   # (B, N - n)
    x_kept = torch.gather(x, 1, kept_idx[:, :, None].expand(-1, -1, C))
    o_kept = attention(attn, x_kept, x_kept)
    out = torch.empty_like(x)
    for b in range(B):
        pos = torch.full((N,), -1, dtype=torch.int64)
        pos[kept_idx[b]] = torch.arange(kept_idx.shape[1])
        src = torch.where(pos >= 0, pos, pos[assigns[b]])
        out[b] = o_kept[b, src]
    for record in records:
        if record["attn1"] is not attn:
            continue
        record.update(x=x.clone(), score=pooled.reshape(B, -1).clone(), base=torch.stack(bases).to(torch.int32),
                      pruned=torch.tensor(pruned_rows, dtype=torch.int32).reshape(B, n),
                      assign=torch.stack(assigns).to(torch.int32), attn_out=out.clone(),
                      ratio=torch.tensor([ratio], dtype=torch.float32))
        record["attn1"] = None  # the block's first call only
    return out


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


def transformer(model, h, context, prune):
    """Transformer2DModel (continuous input, 1x1 conv projections) with BasicTransformerBlocks."""
    B, _, H, W = h.shape
    residual = h
    h = model.proj_in(model.norm(h))
    inner = h.shape[1]
    h = h.permute(0, 2, 3, 1).reshape(B, H * W, inner)
    for blk in model.transformer_blocks:
        x = blk.norm1(h)
        if prune is not None:
            a = pruned_self_attention(blk.attn1, x, H=H, W=W, **prune)
        else:
            a = attention(blk.attn1, x, x)
        h = a + h
        h = attention(blk.attn2, blk.norm2(h), context) + h
        h = blk.ff(blk.norm3(h)) + h
    h = h.reshape(B, H, W, inner).permute(0, 3, 1, 2).contiguous()
    return model.proj_out(h) + residual


def run_layer(layer, h, temb, context, prune):
    for kind, mod, level in layer:
        if kind in ("conv_in", "down", "up"):
            h = mod(h)
        elif kind == "resnet":
            h = mod(h, temb)
        else:
            h = transformer(mod, h, context, prune if (prune is not None and level <= PRUNE_LEVEL) else None)
    return h


class DaToUNet:
    """The UNet run at any depth, with the deep-feature cache of the last full step."""

    def __init__(self, unet):
        self.unet = unet
        self.inputs = input_layers(unet)
        self.outputs = output_layers(unet)
        self.cache = None  # [main-path input of output block j for j in 0..11]

    def __call__(self, sample, t, context, depth, prune=None):
        u = self.unet
        assert 1 <= depth <= FULL
        timesteps = t.reshape(1).expand(sample.shape[0]) if torch.is_tensor(t) else torch.full((sample.shape[0],), t)
        temb = u.time_embedding(u.time_proj(timesteps).to(sample.dtype))
        d = N_BRANCHES if depth == FULL else depth
        skips, h = [], sample
        for layer in self.inputs[:d]:
            h = run_layer(layer, h, temb, context, prune)
            skips.append(h)
        if depth == FULL:
            mid = u.mid_block
            h = mid.resnets[0](h, temb)
            for attn, resnet in zip(mid.attentions, mid.resnets[1:]):
                h = resnet(transformer(attn, h, context, None), temb)
            cache = []
        else:
            assert self.cache is not None, "partial step before any full step"
            h = self.cache[N_BRANCHES - d]
        for j in range(N_BRANCHES - d, N_BRANCHES):
            if depth == FULL:
                cache.append(h)
            h = torch.cat([h, skips[N_BRANCHES - 1 - j]], dim=1)
            h = run_layer(self.outputs[j], h, temb, context, prune)
        if depth == FULL:
            self.cache = cache
        return u.conv_out(u.conv_act(u.conv_norm_out(h)))


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


def run_schedule(unet, sampler, depth, ratio, init_latent, context, units=()):
    """The DaTo loop. Returns raw (n_calls, 2, 4, h, w), final (1, 4, h, w), call steps, timesteps."""
    sched = make_scheduler(sampler)
    model = DaToUNet(unet)
    steps = call_steps(sampler, len(sched.timesteps))
    x = init_latent.clone()
    raws, history, margins = [], [], []  # history: raw outputs of computed calls
    for call, t in enumerate(sched.timesteps):
        k = steps[call]
        if depth[k] == 0:
            assert raws, "depth 0 at the first call"
            raw = raws[-1]
        else:
            prune = None
            if ratio[k] > 0:
                assert len(history) >= 2, f"step {k} prunes before two predictions exist"
                prune = dict(ratio=ratio[k], score=diff_score(history[-1], history[-2]), n_cond=1,
                             records=units if call == unit_call(sampler, depth, ratio) else [], margins=margins)
            inp = sched.scale_model_input(torch.cat([x, x]), t)
            raw = model(inp, t, context, depth[k], prune)
            history.append(raw)
        raws.append(raw)
        uncond, cond = raw.chunk(2)
        eps = uncond + GUIDANCE * (cond - uncond)
        x = sched.step(eps, t, x).prev_sample
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
        # 1. The composed full forward against diffusers.
        io = load_file(os.path.join(FIXTURE, "io.safetensors"))
        model = DaToUNet(unet)
        mine = model(io["sample"], io["timestep"][0], io["encoder_hidden_states"], FULL)
        ref = unet(io["sample"], io["timestep"][0], encoder_hidden_states=io["encoder_hidden_states"]).sample
        err = float((mine - ref).abs().max())
        print(f"full forward vs unet(...).sample: max abs err {err:.3g}")
        assert err <= 1e-6

        # 2. A partial step of every depth right after a full step on the same inputs = the full output.
        worst = 0.0
        for d in range(1, N_BRANCHES + 1):
            part = model(io["sample"], io["timestep"][0], io["encoder_hidden_states"], d)
            worst = max(worst, float((part - mine).abs().max()))
        print(f"partial depths 1..12 after a full step, same inputs: max abs err {worst:.3g}")
        assert worst == 0.0

        # 3. A ratio that prunes no token (n = 0) changes nothing.
        score = torch.rand((2, 16, 16), generator=torch.Generator().manual_seed(0))
        none = model(io["sample"], io["timestep"][0], io["encoder_hidden_states"], FULL,
                     dict(ratio=1e-3, score=score, n_cond=1))
        err = float((none - mine).abs().max())
        print(f"ratio pruning 0 tokens vs no pruning: max abs err {err:.3g}")
        assert err <= 1e-6

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
