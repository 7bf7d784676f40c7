#!/usr/bin/env python3
"""PyTorch side of the UNet CPU benchmark: times diffusers' UNet2DConditionModel forwards.

Builds the UNet from a config with seeded random weights (float32, eval mode, default SDPA
attention), runs --warmup untimed forwards and --iters timed ones under torch.inference_mode,
and prints one JSON line:
  {"impl": "pytorch", "torch": ..., "config": ..., "latent": ..., "batch": ..., "threads": ...,
   "ms_per_forward_median": ..., "ms_min": ..., "peak_rss_mb": ..., ...}

  python bench/unet_torch.py --config sd15 --latent 32 --batch 2 --threads 2 --iters 2
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
from diffusers import UNet2DConditionModel

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Named configs: the committed diffusers configs the C benchmark reads too.
NAMED_CONFIGS = {
    "sd15": os.path.join(REPO_ROOT, "tests", "fixtures", "manifests", "sd15_config.json"),
    "tiny": os.path.join(REPO_ROOT, "tests", "fixtures", "unet", "sd15", "unet", "config.json"),
}


def load_config(name):
    with open(NAMED_CONFIGS.get(name, name)) as f:
        config = json.load(f)
    # Drop diffusers' bookkeeping keys ("_class_name", "_diffusers_version", ...).
    return {k: v for k, v in config.items() if not k.startswith("_")}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="sd15, tiny, or a diffusers unet config.json path")
    parser.add_argument("--latent", type=int, default=32, help="latent height = width")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=77, help="text tokens in encoder_hidden_states")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--iters", type=int, default=5, help="timed forwards")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards before timing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if min(args.latent, args.batch, args.seq, args.threads, args.iters) < 1 or args.warmup < 0:
        parser.error("latent, batch, seq, threads and iters must be >= 1, warmup >= 0")

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    torch.manual_seed(args.seed)  # the weights are the default initialization, drawn from this seed
    unet = UNet2DConditionModel.from_config(config).eval()  # float32 by default
    n_params = sum(p.numel() for p in unet.parameters())
    attn = sorted({type(p).__name__ for p in unet.attn_processors.values()})

    g = torch.Generator().manual_seed(args.seed + 1)
    sample = torch.randn(args.batch, unet.config.in_channels, args.latent, args.latent, generator=g)  # (B, C, H, W)
    hidden = torch.randn(args.batch, args.seq, unet.config.cross_attention_dim, generator=g)  # (B, seq, D)
    timestep = torch.full((args.batch,), 500, dtype=torch.long)  # (B,)

    times_ms = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            out = unet(sample, timestep, encoder_hidden_states=hidden, return_dict=False)[0]
            t1 = time.perf_counter()
            if i >= args.warmup:
                times_ms.append((t1 - t0) * 1000.0)
    if not torch.isfinite(out).all():
        print("unet_torch: non-finite output", file=sys.stderr)
        return 1

    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "config": args.config,
        "latent": args.latent,
        "batch": args.batch,
        "seq": args.seq,
        "threads": args.threads,
        "iters": args.iters,
        "warmup": args.warmup,
        "params": n_params,
        "attn_processor": ",".join(attn),
        "ms_per_forward_median": round(statistics.median(times_ms), 3),
        "ms_min": round(min(times_ms), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
