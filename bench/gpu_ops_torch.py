#!/usr/bin/env python3
"""PyTorch side of bench/bench_gpu_ops.c: the same single GPU ops at SD1.5 shapes.

Attention: torch.nn.functional.scaled_dot_product_attention on q, k, v of shape (B, H, N, D) in
fp32, fp16 and bf16 (self-attention over 4096 tokens with 8 heads x 40, 1024 with 8 x 80, 256
with 8 x 160, cross-attention 4096 x 77 with 8 x 40, batch --batch; scale 1/sqrt(D)). Conv2d:
torch.nn.functional.conv2d with bias in fp32 and fp16 (UNet 3x3 320->320 64x64, 640->640 32x32,
1280->1280 16x16, 1x1 640->320 32x32, 3x3 stride 2 320->320 64x64 at batch --batch; VAE 3x3
128->128 512x512 and 256->256 256x256 at batch 1), torch.backends.cudnn.benchmark on and TF32
off (fp32 stays fp32, as in dato). Each row: the median of --iters calls after --warmup, each
call ended by torch.cuda.synchronize, under torch.inference_mode. One JSON line per row, the
fields of bench_gpu_ops:
  {"impl": "pytorch", "op": "attention"|"conv2d", "case": ..., "dtype": "f32|f16|bf16",
   "mode": "-" (attention) | "cudnn" (conv2d), "ms": ..., "tflops": ...}

  python bench/gpu_ops_torch.py --iters 20 --warmup 3
  python bench/gpu_ops_torch.py --batch 8 --device cuda:1
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

# (kind, Nq, Nk, heads, head dim): bench_gpu_ops.c's attention cases
ATTENTION = [("self", 4096, 4096, 8, 40), ("self", 1024, 1024, 8, 80), ("self", 256, 256, 8, 160),
             ("cross", 4096, 77, 8, 40)]
# (name, vae, Ci, H, W, Co, k, stride, pad): bench_gpu_ops.c's conv2d cases (VAE rows at batch 1)
CONV = [("unet 3x3 320->320 64x64", False, 320, 64, 64, 320, 3, 1, 1),
        ("unet 3x3 640->640 32x32", False, 640, 32, 32, 640, 3, 1, 1),
        ("unet 3x3 1280->1280 16x16", False, 1280, 16, 16, 1280, 3, 1, 1),
        ("unet 1x1 640->320 32x32", False, 640, 32, 32, 320, 1, 1, 0),
        ("unet 3x3 s2 320->320 64x64", False, 320, 64, 64, 320, 3, 2, 1),
        ("vae 3x3 128->128 512x512", True, 128, 512, 512, 128, 3, 1, 1),
        ("vae 3x3 256->256 256x256", True, 256, 256, 256, 256, 3, 1, 1)]


def time_ms(fn, args, device):
    """Median ms of --iters calls of fn after --warmup, each ended by a synchronize; None if the
    last output is not finite."""
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            out = fn()
            torch.cuda.synchronize(device)
            if i >= args.warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
        ok = bool(torch.isfinite(out).all())
    return statistics.median(times) if ok else None


def emit(op, case, dtype, mode, ms, flop):
    print(json.dumps({"impl": "pytorch", "op": op, "case": case, "dtype": dtype, "mode": mode,
                      "ms": round(ms, 4), "tflops": round(flop / (ms * 1e-3) * 1e-12, 2)}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20, help="timed calls per row (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before them")
    parser.add_argument("--device", default="cuda", help="a CUDA device: cuda, cuda:1, ...")
    parser.add_argument("--batch", type=int, default=2, help="batch of the attention and UNet conv rows")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    if args.iters < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--iters >= 1, --warmup >= 0, --batch >= 1")
    if not torch.cuda.is_available():
        print("gpu_ops_torch.py: torch sees no CUDA device", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"gpu_ops_torch.py: torch {torch.__version__} on {torch.cuda.get_device_name(device)}", file=sys.stderr)
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    failed = False
    b = args.batch

    for kind, nq, nk, h, d in ATTENTION:
        case = f"self {nq} h{h}x{d} B{b}" if kind == "self" else f"cross {nq}x{nk} h{h}x{d} B{b}"
        flop = 4.0 * b * h * nq * nk * d
        q32 = torch.randn(b, h, nq, d, generator=g)  # (B, H, N, D)
        k32, v32 = torch.randn(b, h, nk, d, generator=g), torch.randn(b, h, nk, d, generator=g)
        for name, dt in DTYPES.items():
            q, k, v = (t.to(device=device, dtype=dt) for t in (q32, k32, v32))
            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v), args, device)
            if ms is None:
                print(f"gpu_ops_torch.py: attention {case} {name}: output not finite", file=sys.stderr)
                failed = True
                continue
            emit("attention", case, name, "-", ms, flop)
            del q, k, v

    for name, vae, ci, hh, ww, co, ks, stride, pad in CONV:
        bb = 1 if vae else b
        case = f"{name} B{bb}"
        ho, wo = (hh + 2 * pad - ks) // stride + 1, (ww + 2 * pad - ks) // stride + 1
        flop = 2.0 * bb * co * ho * wo * ci * ks * ks
        x32 = torch.randn(bb, ci, hh, ww, generator=g)
        w32 = torch.randn(co, ci, ks, ks, generator=g) / math.sqrt(ci * ks * ks)
        b32 = torch.randn(co, generator=g)
        for dname in ("f32", "f16"):
            x, w, bias = (t.to(device=device, dtype=DTYPES[dname]) for t in (x32, w32, b32))
            ms = time_ms(lambda: F.conv2d(x, w, bias, stride=stride, padding=pad), args, device)
            if ms is None:
                print(f"gpu_ops_torch.py: conv2d {case} {dname}: output not finite", file=sys.stderr)
                failed = True
                continue
            emit("conv2d", case, dname, "cudnn", ms, flop)
            del x, w, bias
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
