#!/usr/bin/env python3
"""PyTorch side of the UNet benchmarks: times diffusers' UNet2DConditionModel forwards.

Builds the UNet from a config with seeded random weights (eval mode, SDPA attention through
AttnProcessor2_0) in --dtype on --device, runs --warmup untimed forwards and --iters timed ones
under torch.inference_mode (on CUDA each timing ends with torch.cuda.synchronize), and prints
one JSON line:
  {"impl": "pytorch", "torch": ..., "device": ..., "dtype": ..., "config": ..., "latent": ...,
   "batch": ..., "threads": ..., "ms_per_forward_median": ..., "ms_min": ..., "peak_rss_mb": ...,
   "peak_gpu_mb": ... (CUDA only), ...}

  python bench/unet_torch.py --config sd15 --latent 32 --batch 2 --threads 2 --iters 2
  python bench/unet_torch.py --config sd15 --latent 64 --batch 8 --device cuda --dtype fp16 --iters 10
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
from diffusers.models.attention_processor import AttnProcessor2_0

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


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def batches_of(text):
    """--batch: one batch size or a comma-separated list (one model build, one JSON line each)."""
    return [int(b) for b in text.split(",")]


def time_batch(unet, args, batch, device, dtype):
    """Median and min ms of --iters forwards (after --warmup) at one batch size; None if non-finite."""
    cuda = device.type == "cuda"
    g = torch.Generator().manual_seed(args.seed + 1)
    sample = torch.randn(batch, unet.config.in_channels, args.latent, args.latent, generator=g)  # (B, C, H, W)
    hidden = torch.randn(batch, args.seq, unet.config.cross_attention_dim, generator=g)  # (B, seq, D)
    sample, hidden = sample.to(device=device, dtype=dtype), hidden.to(device=device, dtype=dtype)
    timestep = torch.full((batch,), 500, dtype=torch.long, device=device)  # (B,)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times_ms = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            out = unet(sample, timestep, encoder_hidden_states=hidden, return_dict=False)[0]
            if cuda:
                torch.cuda.synchronize(device)  # kernels run asynchronously: wait for this forward
            t1 = time.perf_counter()
            if i >= args.warmup:
                times_ms.append((t1 - t0) * 1000.0)
    return times_ms if torch.isfinite(out).all() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="sd15, tiny, or a diffusers unet config.json path")
    parser.add_argument("--latent", type=int, default=32, help="latent height = width")
    parser.add_argument("--batch", type=batches_of, default=[2], help="batch size, or several: 2,8,32")
    parser.add_argument("--seq", type=int, default=77, help="text tokens in encoder_hidden_states")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--iters", type=int, default=5, help="timed forwards")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="weights and activations")
    args = parser.parse_args()
    if min(args.latent, min(args.batch), args.seq, args.threads, args.iters) < 1 or args.warmup < 0:
        parser.error("latent, batch, seq, threads and iters must be >= 1, warmup >= 0")

    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    config = load_config(args.config)
    torch.manual_seed(args.seed)  # the weights are the default initialization, drawn from this seed
    with device:  # initialized where they run (on a GPU in a fraction of the CPU's time)
        unet = UNet2DConditionModel.from_config(config).eval()
    if dtype != torch.float32:
        unet = unet.to(dtype)
    unet.set_attn_processor(AttnProcessor2_0())  # torch's scaled_dot_product_attention
    n_params = sum(p.numel() for p in unet.parameters())
    attn = sorted({type(p).__name__ for p in unet.attn_processors.values()})

    for batch in args.batch:
        times_ms = time_batch(unet, args, batch, device, dtype)
        if times_ms is None:
            print(f"unet_torch: batch {batch}: non-finite output", file=sys.stderr)
            return 1
        extra = {"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 1048576.0, 1),
                 "gpu": torch.cuda.get_device_name(device)} if cuda else {}
        print(json.dumps({
            "impl": "pytorch",
            "torch": torch.__version__,
            "device": args.device,
            "dtype": args.dtype,
            "config": args.config,
            "latent": args.latent,
            "batch": batch,
            "seq": args.seq,
            "threads": args.threads,
            "iters": args.iters,
            "warmup": args.warmup,
            "params": n_params,
            "attn_processor": ",".join(attn),
            "ms_per_forward_median": round(statistics.median(times_ms), 3),
            "ms_min": round(min(times_ms), 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            **extra,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
