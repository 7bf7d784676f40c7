"""The DaTo runtime on a diffusers UNet2DConditionModel: caching by depth and token pruning.

The C engine is the spec (engine/models/unet.c, engine/runtime/dato.c; docs/DATO.md): this module
follows it rule for rule so that `dato-generate --schedule` and a patched diffusers pipeline give
the same images. Layer numbering is LDM's: input layers 0..B-1 (conv_in, then per level one per
resnet[+transformer] and one per downsampler), output layers 0..B-1 (per up block one per
resnet[+transformer][+upsampler]); output layer j concatenates the skip of input layer B-1-j.

  depth B+1: full step; the main-path input of every output layer is cached;
  depth d in 1..B: input layers 0..d-1, then output layers B-d..B-1, the input of output layer
               B-d read from the cache of the last full step;
  depth 0: no UNet call, the previous call's raw prediction (all rows) is returned again;
  ratio r > 0: the self-attention (attn1) of the transformer blocks at levels <= max_level runs
               over the kept tokens only; pruned tokens take the output of their base token.

The UNet's own modules do all the arithmetic (time embedding, resnets, transformers, samplers,
the attention processor), so a full unpruned call is bit-identical to `unet(...)`; only attn1's
processor is swapped, and it calls the original processor on the kept tokens.
"""
import numpy as np
import torch

PATCH = 2  # one base token per PATCH x PATCH patch (docs/DATO.md)
MASK64 = (1 << 64) - 1

SUPPORTED_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D",
                    "UNetMidBlock2DCrossAttn"}


# ---- dato's random numbers (engine/core/rng.c): the random base pick before two predictions exist ----

def _splitmix64(state):
    """One splitmix64 draw: (new state, value)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


class DatoRng:
    """xoshiro256** seeded as dato_rng_seed_stream(seed, stream); draws as dato_rng_below."""

    def __init__(self, seed, stream):
        _, mixed = _splitmix64((seed ^ (stream * 0xD1B54A32D192ED03)) & MASK64)
        self.s = []
        for _ in range(4):
            mixed, v = _splitmix64(mixed)
            self.s.append(v)

    def u64(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK64
        result = (rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        limit = MASK64 - MASK64 % n  # rejects the top partial block: no modulo bias
        while True:
            x = self.u64()
            if x < limit:
                return x % n


# ---- the pruning rules (docs/DATO.md "Token pruning") ----------------------------------------------

def diff_score(eps_a, eps_b):
    """D (B, h, w) = mean over channels of |eps_a - eps_b|, accumulated in float64 as dato_diffscore."""
    C = eps_a.shape[1]
    return ((eps_a.double() - eps_b.double()).abs().sum(1) / C).float()


def pool_scores(score, H, W):
    """score (B, h, w) -> (B, H, W): average over stride x stride cells in float64 (dato_pool_scores)."""
    B, h, w = score.shape
    k = h // H
    if k == 1:
        return score
    cells = score.double().reshape(B, H, k, W, k).sum((2, 4))
    return (cells / (k * k)).float()


def choose_base(score):
    """score (H, W) -> (P,) int64: per PATCH x PATCH patch (row-major patch order) the flat index of
    the highest score, ties to the lowest flat index (dato_choose_base). Border patches may be
    smaller: the grid is padded with -inf, which never wins."""
    H, W = score.shape
    Hp, Wp = -(-H // PATCH), -(-W // PATCH)
    padded = torch.full((Hp * PATCH, Wp * PATCH), float("-inf"), dtype=score.dtype, device=score.device)
    padded[:H, :W] = score
    cells = padded.reshape(Hp, PATCH, Wp, PATCH).permute(0, 2, 1, 3).reshape(Hp, Wp, PATCH * PATCH)
    k = torch.argmax(cells, dim=2)  # first maximum in (dy, dx) order = the lowest flat index
    py, px = torch.meshgrid(torch.arange(Hp, device=score.device), torch.arange(Wp, device=score.device),
                            indexing="ij")
    return ((py * PATCH + k // PATCH) * W + px * PATCH + k % PATCH).reshape(-1)


def random_base(rng, H, W):
    """(P,) int64: a seeded random token per patch, drawn as dato's choose_bases does."""
    base = []
    for py in range(0, H, PATCH):
        for px in range(0, W, PATCH):
            ph, pw = min(PATCH, H - py), min(PATCH, W - px)
            k = rng.below(ph * pw)
            base.append((py + k // pw) * W + px + k % pw)
    return torch.tensor(base, dtype=torch.int64)


def n_pruned(ratio, N, P):
    """n = floor(r N + 1e-4) in float32 as the C side computes it, clamped to the N - P non-base tokens."""
    n = int(np.floor(np.float32(ratio) * np.float32(N) + np.float32(1e-4)))
    return min(n, N - P)


def select_tokens(x, base, n):
    """For one row x (N, C) and its base tokens (P,): the cosine similarity of every token to every
    base token on the L2-normalized rows (a zero row stays zero), each token's closest base (ties:
    the first base), and the n non-base tokens with the highest similarity (ties: lowest index).
    Returns (pruned (n,) in selection order, assign (N,) the token whose output each token takes,
    sims (N, P))."""
    N = x.shape[0]
    norm2 = (x.double() ** 2).sum(-1)
    inv = torch.where(norm2 > 0, 1.0 / norm2.sqrt(), torch.zeros_like(norm2)).float()
    xn = x * inv[:, None]                                  # (N, C)
    sims = xn @ xn[base].T                                 # (N, P)
    j = torch.argmax(sims, dim=1)                          # first maximum
    sim = sims.gather(1, j[:, None])[:, 0]                 # (N,)
    is_base = torch.zeros(N, dtype=torch.bool, device=x.device)
    is_base[base] = True
    assign = torch.where(is_base, torch.arange(N, device=x.device), base[j])
    candidates = (~is_base).nonzero()[:, 0]                # ascending index
    order = torch.sort(sim[candidates], descending=True, stable=True).indices
    return candidates[order[:n]], assign, sims


class PruneState:
    """What the attn1 processors of one UNet call need: the ratio, the pooled scores or the random
    generator, the CFG twin rows, and the grid of the block running now."""

    def __init__(self, ratio, score, rng, n_cond):
        self.ratio = ratio
        self.score = score    # (B, h, w) dynamics at latent resolution, or None: random pick
        self.rng = rng
        self.n_cond = n_cond  # rows [0, n_cond) are uncond and take the bases of row + n_cond
        self.grid = None      # (H, W) of the transformer that runs now (set by the forward)


class PruneProcessor:
    """attn1 processor: the original processor when the call does not prune, else DaTo's pruned
    self-attention over the kept tokens, with recovery of the pruned ones."""

    def __init__(self, runtime, original):
        self.runtime = runtime
        self.original = original

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        state = self.runtime.prune
        if state is None or encoder_hidden_states is not None or attention_mask is not None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        x = hidden_states                                  # (B, N, C) LayerNorm'd block input
        B, N, C = x.shape
        H, W = state.grid
        pooled = None if state.score is None else pool_scores(state.score, H, W)  # (B, H, W)
        bases = [None] * B
        for b in range(state.n_cond, B):
            bases[b] = choose_base(pooled[b]) if pooled is not None else random_base(state.rng, H, W).to(x.device)
        for b in range(state.n_cond):
            bases[b] = bases[b + state.n_cond]
        P = bases[-1].numel()
        n = n_pruned(state.ratio, N, P)
        if n <= 0:
            return self.original(attn, hidden_states, None, None, **kwargs)
        keep = torch.ones(B, N, dtype=torch.bool, device=x.device)
        selections = [select_tokens(x[b], bases[b], n) for b in range(B)]
        for b, (pruned, _, _) in enumerate(selections):
            keep[b, pruned] = False
        kept = keep.nonzero()[:, 1].reshape(B, N - n)      # (B, N - n) ascending per row
        x_kept = torch.gather(x, 1, kept[:, :, None].expand(-1, -1, C))
        o_kept = self.original(attn, x_kept, None, None, **kwargs)  # (B, N - n, C)
        out = o_kept.new_empty(B, N, o_kept.shape[2])     # (B, N, C)
        for b, (pruned, assign, sims) in enumerate(selections):
            pos = torch.full((N,), -1, dtype=torch.int64, device=x.device)  # row of each token among the kept ones
            pos[kept[b]] = torch.arange(N - n, device=x.device)
            out[b] = o_kept[b, torch.where(pos >= 0, pos, pos[assign])]
        if self.runtime.observer is not None:
            self.runtime.observer(attn, dict(
                x=x, score=pooled, base=torch.stack(bases), pruned=torch.stack([s[0] for s in selections]),
                assign=torch.stack([s[1] for s in selections]), sims=[s[2] for s in selections], out=out,
                ratio=state.ratio))
        return out


# ---- the UNet, layer by layer --------------------------------------------------------------------------

def _block_levels(unet):
    """(down blocks, up blocks) with each block's resolution level (0: the latent's size)."""
    n = len(unet.down_blocks)
    return list(enumerate(unet.down_blocks)), [(n - 1 - b, blk) for b, blk in enumerate(unet.up_blocks)]


def input_layers(unet):
    """The B input layers as lists of (kind, module, level)."""
    downs, _ = _block_levels(unet)
    layers = [[("conv_in", unet.conv_in, 0)]]
    for level, block in downs:
        attns = getattr(block, "attentions", None)
        for i, resnet in enumerate(block.resnets):
            layers.append([("resnet", resnet, level)] + ([("transformer", attns[i], level)] if attns else []))
        if block.downsamplers is not None:
            layers.append([("down", block.downsamplers[0], level)])
    return layers


def output_layers(unet):
    """The B output layers: per up block, (resnet[, transformer][, upsampler]) groups."""
    _, ups = _block_levels(unet)
    layers = []
    for level, block in ups:
        attns = getattr(block, "attentions", None)
        for i, resnet in enumerate(block.resnets):
            layer = [("resnet", resnet, level)] + ([("transformer", attns[i], level)] if attns else [])
            if i == len(block.resnets) - 1 and block.upsamplers is not None:
                layer.append(("up", block.upsamplers[0], level))
            layers.append(layer)
    return layers


def n_branches(unet):
    """B, the UNet's skip branches (12 for SD1.x/2.x, 9 for SDXL)."""
    return len(input_layers(unet))


def default_max_level(unet):
    """The first level that has transformer blocks (0 for SD1/2, 1 for SDXL), as dato_default_max_level."""
    downs, _ = _block_levels(unet)
    for level, block in downs:
        if getattr(block, "attentions", None):
            return level
    return len(downs) - 1


def check_unet(unet):
    """Raises ValueError naming what this runtime cannot run (a block type, unequal paths, FreeU)."""
    blocks = list(unet.down_blocks) + list(unet.up_blocks) + [unet.mid_block]
    for block in blocks:
        if type(block).__name__ not in SUPPORTED_BLOCKS:
            raise ValueError(f"dato_diffusers: UNet block {type(block).__name__} is not supported "
                             f"(supported: {', '.join(sorted(SUPPORTED_BLOCKS))})")
    if getattr(unet.up_blocks[0], "s1", None) is not None:
        raise ValueError("dato_diffusers: FreeU is enabled on this UNet; call pipe.disable_freeu() first")
    n_in, n_out = len(input_layers(unet)), len(output_layers(unet))
    if n_in != n_out:
        raise ValueError(f"dato_diffusers: the UNet has {n_in} input layers but {n_out} output layers")


class DaToUNet:
    """The UNet run at any depth with any pruning ratio, holding what a run carries from call to call:
    the deep-feature cache of the last full call and the two latest raw predictions. Call reset()
    before each image batch (nothing may carry across runs)."""

    def __init__(self, unet, seed=0, max_level=None):
        check_unet(unet)
        self.unet = unet
        self.seed = seed
        self.max_level = default_max_level(unet) if max_level is None else max_level
        self.inputs = input_layers(unet)
        self.outputs = output_layers(unet)
        self.B = len(self.inputs)
        self.prune = None     # PruneState of the call running now, None when it does not prune
        self.observer = None  # optional callable(attn, info) told about every pruned block (tests, fixtures)
        self.processors = {}  # attn1 module -> its original processor
        downs, ups = _block_levels(unet)
        blocks = downs + ups + [(len(downs) - 1, unet.mid_block)]
        for level, block in blocks:
            if level > self.max_level:
                continue
            for transformer in getattr(block, "attentions", None) or []:
                for tb in transformer.transformer_blocks:
                    original = tb.attn1.processor  # another runtime's processor: take what it wraps
                    self.processors[tb.attn1] = getattr(original, "original", original)
        self.reset()

    def install(self):
        """Puts the pruning processor on every prunable attn1."""
        for attn1, original in self.processors.items():
            attn1.processor = PruneProcessor(self, original)

    def uninstall(self):
        for attn1, original in self.processors.items():
            attn1.processor = original

    def reset(self):
        self.cache = None  # [main-path input of output layer j, j = 0..B-1] of the last full call
        self.preds = []    # the two latest raw predictions, newest last
        self.last = None   # the previous call's raw prediction (depth 0 returns it)
        self.prune = None

    def __call__(self, sample, timestep, encoder_hidden_states, *, step, depth, ratio, n_cond,
                 class_labels=None, timestep_cond=None, attention_mask=None, cross_attention_kwargs=None,
                 added_cond_kwargs=None, encoder_attention_mask=None):
        """The raw prediction (B, C, h, w) of one UNet call of sampler step `step` at `depth` pruning
        `ratio`; n_cond = the CFG half (rows [uncond; cond]) or 0 without guidance."""
        if depth == 0:
            if self.last is None:
                raise ValueError(f"dato_diffusers: step {step} has depth 0 but no UNet call came before it")
            return self.last
        self.prune = None
        if ratio > 0:
            score = diff_score(self.preds[-1], self.preds[-2]) if len(self.preds) >= 2 else None
            self.prune = PruneState(ratio, score, DatoRng(self.seed, step), n_cond)
        try:
            raw = self._forward(sample, timestep, encoder_hidden_states, depth, class_labels, timestep_cond,
                                attention_mask, cross_attention_kwargs, added_cond_kwargs, encoder_attention_mask)
        finally:
            self.prune = None
        self.preds = (self.preds + [raw])[-2:]
        self.last = raw
        return raw

    def _forward(self, sample, timestep, context, depth, class_labels, timestep_cond, attention_mask,
                 cross_attention_kwargs, added_cond_kwargs, encoder_attention_mask):
        """UNet2DConditionModel.forward's arithmetic, layer by layer, at `depth`."""
        u, B = self.unet, self.B
        if not 1 <= depth <= B + 1:
            raise ValueError(f"dato_diffusers: depth {depth} outside 0..{B + 1}")
        up_factor = 2 ** u.num_upsamplers
        forward_upsample_size = any(s % up_factor != 0 for s in sample.shape[-2:])
        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if encoder_attention_mask is not None:
            encoder_attention_mask = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if u.config.center_input_sample:
            sample = 2 * sample - 1.0
        emb = u.time_embedding(u.get_time_embed(sample=sample, timestep=timestep), timestep_cond)
        class_emb = u.get_class_embed(sample=sample, class_labels=class_labels)
        if class_emb is not None:
            emb = torch.cat([emb, class_emb], dim=-1) if u.config.class_embeddings_concat else emb + class_emb
        if u.config.addition_embed_type == "image_hint":
            raise ValueError("dato_diffusers: addition_embed_type 'image_hint' is not supported")
        aug_emb = u.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=added_cond_kwargs)
        emb = emb + aug_emb if aug_emb is not None else emb
        if u.time_embed_act is not None:
            emb = u.time_embed_act(emb)
        context = u.process_encoder_hidden_states(encoder_hidden_states=context, added_cond_kwargs=added_cond_kwargs)
        attn_kwargs = dict(encoder_hidden_states=context, attention_mask=attention_mask,
                           cross_attention_kwargs=cross_attention_kwargs, encoder_attention_mask=encoder_attention_mask)

        d = B if depth == B + 1 else depth
        skips, h = [], sample
        for layer in self.inputs[:d]:
            h = self._run_layer(layer, h, emb, attn_kwargs, None)
            skips.append(h)
        if depth == B + 1:
            if self.prune is not None:
                self.prune.grid = tuple(h.shape[-2:])
            if getattr(u.mid_block, "has_cross_attention", False):
                h = u.mid_block(h, emb, **attn_kwargs)
            else:
                h = u.mid_block(h, emb)
            cache = []
        else:
            if self.cache is None:
                raise ValueError(f"dato_diffusers: a partial call (depth {depth}) before any full call")
            h = self.cache[B - d]
            if h.shape[0] != sample.shape[0]:
                raise ValueError(f"dato_diffusers: a partial call of {sample.shape[0]} rows after a full call of "
                                 f"{h.shape[0]}")
        for j in range(B - d, B):
            if depth == B + 1:
                cache.append(h)
            h = torch.cat([h, skips[B - 1 - j]], dim=1)
            next_size = skips[B - 2 - j].shape[2:] if forward_upsample_size and j < B - 1 else None
            h = self._run_layer(self.outputs[j], h, emb, attn_kwargs, next_size)
        if depth == B + 1:
            self.cache = cache
        if u.conv_norm_out:
            h = u.conv_act(u.conv_norm_out(h))
        return u.conv_out(h)

    def _run_layer(self, layer, h, emb, attn_kwargs, upsample_size):
        for kind, module, _ in layer:
            if kind == "resnet":
                h = module(h, emb)
            elif kind == "transformer":
                if self.prune is not None:
                    self.prune.grid = tuple(h.shape[-2:])
                h = module(h, return_dict=False, **attn_kwargs)[0]
            elif kind == "up":
                h = module(h, upsample_size)
            else:  # conv_in, downsampler
                h = module(h)
        return h
