"""Trains dato's embedded default model, `models/fashion-sd`: a small Stable Diffusion 1.x-architecture
text-to-image model on Fashion-MNIST, plus the feature network that FID and the class-accuracy check use.

What it builds, in the diffusers folder layout (loadable with StableDiffusionPipeline.from_pretrained and by
dato's C pipeline through the same code as a real SD folder):

  tokenizer/      a CLIP BPE vocabulary of our own (vocab.json + merges.txt in CLIP's format, learned from
                  the prompt templates), model_max_length 16
  text_encoder/   CLIPTextModel: 2 layers, width 32, 2 heads, quick_gelu, 16 positions
  vae/            AutoencoderKL: 1 -> 4 latent channels, factor 2 (28x28 images <-> 4x14x14 latents),
                  block_out_channels (16, 32), no mid attention
  unet/           UNet2DConditionModel: 2 levels (32, 48), 2 ResNets per level, transformer blocks
                  (self-attention, cross-attention, GEGLU) at the 14x14 level and in the mid block:
                  6 skip branches for DeepCache depths, 196 tokens where DaTo prunes
  scheduler/      PNDMScheduler (PLMS), SD1.5's betas; epsilon prediction
  featnet/        a CNN classifier (test accuracy printed; >= 90% required): its 64-d penultimate layer
                  is the FID feature (docs/DEFAULT_MODEL.md)
  dato.json       the defaults dato's tools read: steps, guidance, image size, prompts, reference stats

Prompts are templates over the ten class names with synonyms; the training script writes them to
datasets/fashion-mnist/prompts.tsv (label, prompt) and the evaluation prompts (one per class) to
datasets/fashion-mnist/eval_prompts.txt. 10% of training prompts are empty so classifier-free guidance works.

Why a VAE: the same UNet in pixel space (1x28x28, 784 tokens) costs 485 MMAC per image-step against 84
in the 4x14x14 latent space, and the decoder (31.5 MMAC) runs once per image, not 50 times.

Determinism: one seed (--seed) drives every random choice; torch runs on the CPU with --threads threads
(results are reproducible for a fixed thread count). Run time on a 2-core x86 machine: about 55 minutes
(feature net 6, VAE 6, UNet + text encoder ~40). --quick runs every stage for a few steps (a smoke test).

Usage: python3 tools/train_default.py [--out models/fashion-sd] [--work build/train_default] [--quick]
Requires: torch, diffusers, transformers, safetensors (tools/requirements.txt); the Debian package
dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
"""
import argparse
import copy
import gzip
import json
import math
import os
import random
import re
import shutil
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

DATA_DIR = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Class names as Fashion-MNIST numbers them, each with the nouns prompts may use (the first is canonical).
CLASSES = [
    ("t-shirt", ["t-shirt", "top", "tee"]),
    ("trouser", ["trouser", "pair of trousers", "trousers", "pants"]),
    ("pullover", ["pullover", "sweater", "jumper"]),
    ("dress", ["dress", "frock"]),
    ("coat", ["coat", "jacket"]),
    ("sandal", ["sandal", "summer sandal"]),
    ("shirt", ["shirt", "button-down shirt"]),
    ("sneaker", ["sneaker", "trainer", "running shoe"]),
    ("bag", ["bag", "handbag"]),
    ("ankle boot", ["ankle boot", "boot"]),
]
PLURAL = {"trousers", "pants"}
TEMPLATES = ["{a}", "a photo of {a}", "a picture of {a}", "an image of {a}", "a black and white photo of {a}",
             "a photo of the {n}", "{n}", "a product photo of {a}", "a small photo of {a}",
             "a grayscale image of {a}", "a centered photo of {a}", "a cropped photo of {a}"]

# The feature network, as data: (out channels of two 3x3 conv+ReLU layers, then 2x2 max-pool) per stage,
# then Linear -> FEATURE_DIM (the features) -> ReLU -> Linear -> 10 classes.
FEATNET_STAGES = [32, 64]
FEATURE_DIM = 64
FEATNET_MEAN, FEATNET_STD = 0.2860, 0.3530  # of the Fashion-MNIST training pixels in [0, 1]


def with_article(noun):
    if noun in PLURAL:
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def all_prompts():
    """(label, prompt) for every template x noun."""
    out = []
    for label, (_, nouns) in enumerate(CLASSES):
        for noun in nouns:
            for t in TEMPLATES:
                out.append((label, t.format(a=with_article(noun), n=noun)))
    return out


def eval_prompts():
    return ["a photo of " + with_article(c) for c, _ in CLASSES]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


# ---- tokenizer: a CLIP-format BPE vocabulary learned from the prompts ----------------------------------------

def bytes_to_unicode():
    """CLIP's (and GPT-2's) reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def learn_bpe(texts):
    """Greedy BPE on CLIP's pre-tokenized words until every corpus word is one symbol. Ties break by
    the pair's text so the result does not depend on dict order."""
    pat = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")
    b2u = bytes_to_unicode()
    counts = {}
    for t in texts:
        for w in pat.findall(t.lower()):
            syms = tuple(b2u[b] for b in w.encode("utf-8"))
            syms = syms[:-1] + (syms[-1] + "</w>",)
            counts[syms] = counts.get(syms, 0) + 1
    merges = []
    while True:
        pairs = {}
        for syms, c in counts.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], tuple(-ord(ch) for ch in kv[0][0] + " " + kv[0][1])))[0]
        merges.append(best)
        new = {}
        for syms, c in counts.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        counts = new
    return merges


def write_tokenizer(out_dir, max_len):
    os.makedirs(out_dir, exist_ok=True)
    merges = learn_bpe([p for _, p in all_prompts()])
    b2u = bytes_to_unicode()
    vocab = list(b2u.values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>"}, f, indent=2)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": max_len, "do_lower_case": True,
                   "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>"}, f, indent=2)
    return len(vocab)


# ---- the feature network ---------------------------------------------------------------------------------------

class FeatNet(nn.Module):
    """conv3x3-BN-ReLU x2, maxpool per stage; Linear -> features; ReLU, dropout, Linear -> logits.
    BatchNorm is folded into the convolutions at export, so the C side sees conv+bias only."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for c in FEATNET_STAGES:
            for _ in range(2):
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
                cin = c
            layers.append(nn.MaxPool2d(2))
        self.convs = nn.Sequential(*layers)
        side = 28 // 2 ** len(FEATNET_STAGES)
        self.fc1 = nn.Linear(cin * side * side, FEATURE_DIM)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)

    def features(self, x):  # x (B, 1, 28, 28) normalized
        return self.fc1(self.convs(x).flatten(1))

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.features(x))))


def featnet_input(u8):
    return (u8.float().unsqueeze(1) / 255.0 - FEATNET_MEAN) / FEATNET_STD


def train_featnet(args, gen):
    xtr, ytr = load_split("train")
    xte, yte = load_split("test")
    net = FeatNet()
    epochs = 1 if args.quick else 5
    steps_per_epoch = 20 if args.quick else len(xtr) // 128
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    t0 = time.time()
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * 128:(i + 1) * 128]
            x = featnet_input(xtr[idx])
            # random shifts of up to 2 pixels (zero padding): the only augmentation
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            x = torch.roll(F.pad(x, (2, 2, 2, 2), value=-FEATNET_MEAN / FEATNET_STD), (dy, dx), (2, 3))[:, :, 2:30, 2:30]
            loss = F.cross_entropy(net(x), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = featnet_accuracy(net, xte, yte)
        print(f"featnet epoch {ep + 1}/{epochs}: loss {loss.item():.3f}, test accuracy {acc:.4f} ({time.time() - t0:.0f} s)",
              flush=True)
    return net, acc


@torch.no_grad()
def featnet_accuracy(net, x, y):
    net.eval()
    correct = 0
    for i in range(0, len(x), 1000):
        correct += (net(featnet_input(x[i:i + 1000])).argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(x)


def export_featnet(net, out_dir, acc):
    """Folds BatchNorm (eval statistics) into each conv; names conv{i}.weight/bias, fc1.*, fc2.*."""
    os.makedirs(out_dir, exist_ok=True)
    net.eval()
    tensors, i = {}, 0
    mods = list(net.convs)
    for j, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[j + 1]
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            tensors[f"conv{i}.weight"] = (m.weight * s[:, None, None, None]).detach().contiguous()
            tensors[f"conv{i}.bias"] = ((m.bias - bn.running_mean) * s + bn.bias).detach().contiguous()
            i += 1
    for name in ("fc1", "fc2"):
        lin = getattr(net, name)
        tensors[f"{name}.weight"] = lin.weight.detach().contiguous()
        tensors[f"{name}.bias"] = lin.bias.detach().contiguous()
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({"architecture": "dato-featnet", "input": [1, 28, 28], "mean": FEATNET_MEAN, "std": FEATNET_STD,
                   "stages": FEATNET_STAGES, "convs_per_stage": 2, "feature_dim": FEATURE_DIM, "classes": 10,
                   "class_names": [c for c, _ in CLASSES], "test_accuracy": round(acc, 4)}, f, indent=2)


# ---- the VAE ---------------------------------------------------------------------------------------------------

def make_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1,
                         latent_channels=4, norm_num_groups=8, sample_size=28, mid_block_add_attention=False)


def image_input(u8):  # (B, 28, 28) uint8 -> (B, 1, 28, 28) in [-1, 1], as the pipeline decodes
    return u8.float().unsqueeze(1) / 127.5 - 1.0


def train_vae(args, gen, xtr):
    vae = make_vae()
    steps = 40 if args.quick else 1400
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    perm = torch.cat([torch.randperm(len(xtr), generator=gen) for _ in range(3)])
    for i in range(steps):
        x = image_input(xtr[perm[i * 64:(i + 1) * 64]])
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        # L1 + MSE reconstruction; a small KL keeps the latents near N(0, 1) for the diffusion model
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-5 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if i % 200 == 0 or i == steps - 1:
            print(f"vae step {i + 1}/{steps}: loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    return vae


@torch.no_grad()
def encode_latents(vae, x):
    """Posterior mean and std of every image (B, 4, 14, 14) each."""
    vae.eval()
    means, stds = [], []
    for i in range(0, len(x), 1000):
        post = vae.encode(image_input(x[i:i + 1000])).latent_dist
        means.append(post.mean)
        stds.append(post.std)
    return torch.cat(means), torch.cat(stds)


# ---- text encoder + UNet ---------------------------------------------------------------------------------------

def make_text_encoder(vocab_size, max_len):
    from transformers import CLIPTextConfig, CLIPTextModel
    cfg = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=max_len, hidden_act="quick_gelu",
                         projection_dim=32, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                         pad_token_id=vocab_size - 1)
    return CLIPTextModel(cfg)


def make_unet():
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(sample_size=14, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 48),
                                layers_per_block=2, attention_head_dim=2, cross_attention_dim=32, norm_num_groups=8)


def make_scheduler():
    from diffusers import PNDMScheduler
    return PNDMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)


class EMA:
    def __init__(self, model):
        self.shadow = copy.deepcopy(model).eval()
        self.n = 0

    @torch.no_grad()
    def update(self, model, max_decay=0.999):
        self.n += 1
        d = min(max_decay, (1 + self.n) / (10 + self.n))
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.mul_(d).add_(p.detach(), alpha=1 - d)


def train_unet(args, gen, lat_mean, lat_std, ytr, tokenizer, vocab_size, max_len):
    unet, te = make_unet(), make_text_encoder(vocab_size, max_len)
    alphas_cumprod = make_scheduler().alphas_cumprod  # (1000,)
    prompts = all_prompts()
    by_class = [[p for l, p in prompts if l == c] for c in range(10)]
    # every prompt tokenized once; the batch picks rows
    all_text = [p for c in range(10) for p in by_class[c]] + [""]
    ids = tokenizer(all_text, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt").input_ids
    first = np.cumsum([0] + [len(b) for b in by_class])
    empty_row = len(all_text) - 1

    params = list(unet.parameters()) + list(te.parameters())
    steps = 30 if args.quick else args.unet_steps
    bs = 128
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
    warm = 300

    def lr_at(i):
        return min(1.0, (i + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / steps)))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema_unet, ema_te = EMA(unet), EMA(te)
    n = len(lat_mean)
    perm = torch.cat([torch.randperm(n, generator=gen) for _ in range(steps * bs // n + 1)])
    t0, avg = time.time(), None
    for i in range(steps):
        idx = perm[i * bs:(i + 1) * bs]
        z0 = lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=gen)
        y = ytr[idx]
        pick = torch.randint(0, 1 << 30, (bs,), generator=gen)
        rows = torch.tensor([first[c] + int(p) % (first[c + 1] - first[c]) for c, p in zip(y.tolist(), pick.tolist())])
        rows[torch.rand(bs, generator=gen) < 0.1] = empty_row  # 10% unconditional
        t = torch.randint(0, 1000, (bs,), generator=gen)
        eps = torch.randn(z0.shape, generator=gen)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        ctx = te(ids[rows]).last_hidden_state
        loss = F.mse_loss(unet(zt, t, ctx).sample, eps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lr_sched.step()
        ema_unet.update(unet)
        ema_te.update(te)
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if i % 100 == 0 or i == steps - 1:
            el = time.time() - t0
            print(f"unet step {i + 1}/{steps}: loss {avg:.4f}, lr {lr_sched.get_last_lr()[0]:.2e} "
                  f"({el:.0f} s, ETA {el / (i + 1) * (steps - i - 1):.0f} s)", flush=True)
        if args.work and (i + 1) % 1000 == 0:
            torch.save({"unet": ema_unet.shadow.state_dict(), "te": ema_te.shadow.state_dict(), "step": i + 1},
                       os.path.join(args.work, "unet_ema.pt"))
    return ema_unet.shadow, ema_te.shadow


@torch.no_grad()
def sample_accuracy(pipe, featnet, per_class, guidance, steps, seed):
    """Fraction of generated images that the feature network classifies as the prompted class."""
    prompts = eval_prompts()
    correct = 0
    for c, p in enumerate(prompts):
        g = torch.Generator().manual_seed(seed + c)
        img = pipe([p] * per_class, num_inference_steps=steps, guidance_scale=guidance, generator=g,
                   output_type="pt").images  # (B, 1, 28, 28) in [0, 1]
        u8 = (img[:, 0] * 255).round().clamp(0, 255).to(torch.uint8)
        correct += (featnet(featnet_input(u8)).argmax(1) == c).sum().item()
    return correct / (per_class * len(prompts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "fashion-sd"))
    ap.add_argument("--datasets", default=os.path.join(ROOT, "datasets", "fashion-mnist"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "train_default"), help="checkpoints and logs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--unet-steps", type=int, default=4000, help="UNet optimizer steps at batch 128")
    ap.add_argument("--quick", action="store_true", help="a few steps per stage: checks the plumbing only")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    t_start = time.time()

    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    # prompts
    os.makedirs(args.datasets, exist_ok=True)
    with open(os.path.join(args.datasets, "prompts.tsv"), "w") as f:
        f.write("".join(f"{l}\t{p}\n" for l, p in all_prompts()))
    with open(os.path.join(args.datasets, "eval_prompts.txt"), "w") as f:
        f.write("".join(p + "\n" for p in eval_prompts()))

    # tokenizer
    max_len = 16
    tok_dir = os.path.join(args.work, "tokenizer")
    vocab_size = write_tokenizer(tok_dir, max_len)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    for _, p in all_prompts():
        n = len(tokenizer(p).input_ids)
        assert n <= max_len, f"prompt {p!r} has {n} tokens, more than {max_len}"
    print(f"tokenizer: {vocab_size} entries, {len(all_prompts())} prompts", flush=True)

    featnet, acc = train_featnet(args, gen)
    assert args.quick or acc >= 0.90, f"feature network test accuracy {acc:.4f} < 0.90"
    featnet.eval()

    xtr, ytr = load_split("train")
    vae = train_vae(args, gen, xtr).eval()
    lat_mean, lat_std = encode_latents(vae, xtr)
    scaling = float(1.0 / lat_mean.std())
    vae.register_to_config(scaling_factor=round(scaling, 5))
    with torch.no_grad():
        x = image_input(xtr[:1000])
        rec = vae.decode(lat_mean[:1000]).sample
        print(f"vae: latent std {lat_mean.std():.4f} -> scaling_factor {scaling:.5f}, reconstruction "
              f"MAE {(rec - x).abs().mean() * 127.5:.2f}/255", flush=True)
    lat_mean, lat_std = lat_mean * vae.config.scaling_factor, lat_std * vae.config.scaling_factor

    unet, te = train_unet(args, gen, lat_mean, lat_std, ytr, tokenizer, vocab_size, max_len)

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet,
                                   scheduler=make_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.check_inputs = lambda *a, **k: None  # diffusers insists on sizes divisible by 8; 28 = 2 x 14 is fine
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    pipe.save_pretrained(args.out, safe_serialization=True)
    # The CLIP-format files, not transformers' tokenizer.json: dato's C tokenizer reads vocab.json + merges.txt.
    shutil.rmtree(os.path.join(args.out, "tokenizer"))
    shutil.copytree(tok_dir, os.path.join(args.out, "tokenizer"))
    reloaded = CLIPTokenizer.from_pretrained(os.path.join(args.out, "tokenizer"))
    for _, p in all_prompts() + [(0, "")]:
        assert reloaded(p).input_ids == tokenizer(p).input_ids, f"tokenizer reload differs on {p!r}"
    export_featnet(featnet, os.path.join(args.out, "featnet"), acc)

    per_class = 2 if args.quick else 20
    accs = {}
    for g in (2.0, 3.0, 4.0, 6.0):
        accs[g] = sample_accuracy(pipe, featnet, per_class, g, 25, args.seed)
        print(f"guidance {g}: {accs[g]:.3f} of {per_class * 10} PLMS-25 samples classified as prompted", flush=True)
    defaults = {"format": "dato-model-defaults", "version": 1, "steps": 25, "guidance": 4.0, "height": 28, "width": 28,
                "eval_prompts": "../../datasets/fashion-mnist/eval_prompts.txt",
                "feature_net": "featnet",
                "reference_stats": "../../datasets/fashion-mnist/stats_test.h5"}
    with open(os.path.join(args.out, "dato.json"), "w") as f:
        json.dump(defaults, f, indent=2)
    with open(os.path.join(args.work, "train_summary.json"), "w") as f:
        json.dump({"featnet_test_accuracy": acc, "vae_scaling_factor": vae.config.scaling_factor,
                   "sample_accuracy_by_guidance": accs, "seconds": time.time() - t_start,
                   "torch": torch.__version__, "threads": args.threads, "seed": args.seed}, f, indent=2)
    print(f"done in {time.time() - t_start:.0f} s: {args.out}", flush=True)


if __name__ == "__main__":
    main()
